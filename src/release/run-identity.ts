import { hostname, userInfo } from 'node:os';

/** Who is deploying, as written into a host's lock and audit log. */
export interface RunIdentity {
  /** The workflow run's URL on GitHub, or `local:<user>@<machine>` from a terminal. */
  run: string;
  actor: string;
  /** The machine the run executes on. */
  from: string;
}

/** Derives the identity from the runner's environment (GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID, ...). */
export function runIdentity(env: Readonly<Record<string, string | undefined>>, machine = hostname()): RunIdentity {
  const { GITHUB_SERVER_URL: server = 'https://github.com', GITHUB_REPOSITORY: repository, GITHUB_RUN_ID: runId, GITHUB_RUN_ATTEMPT: attempt } = env;
  const local = `local:${env.USER ?? safeUser()}@${machine}`;
  const run = repository && runId ? `${server}/${repository}/actions/runs/${runId}${attempt && attempt !== '1' ? `/attempts/${attempt}` : ''}` : local;
  return { run: clean(run), actor: clean(env.GITHUB_ACTOR ?? env.USER ?? safeUser()), from: clean(machine) };
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** One word without spaces or line breaks: lock and audit lines stay one `key=value` per field. */
function clean(value: string): string {
  return value.replace(/\s+/g, '_') || 'unknown';
}
