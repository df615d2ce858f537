import type { Mode } from '../config/settings.js';
import type { DeployOutcome } from './reporter.js';

/** Who ran the deploy, how long it took, and links to what it shipped: the job summary's second line. */
export interface RunFacts {
  mode: Mode;
  /** Seconds from the start of the step to its report. */
  seconds: number;
  actor?: string;
  /** The commit the workflow checked out, when the run deploys it (not for a rollback). */
  commit?: { sha: string; url: string };
  /** GitHub's compare view from the previous release to the new one (both names as git refs). */
  compare?: { from: string; to: string; url: string };
}

/**
 * The facts the runner's environment gives (GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_SHA,
 * GITHUB_ACTOR); a link is left out when its variables are missing, as from a terminal.
 */
export function runFacts(env: Readonly<Record<string, string | undefined>>, outcome: DeployOutcome, mode: Mode, seconds: number): RunFacts {
  const facts: RunFacts = { mode, seconds };
  if (env.GITHUB_ACTOR) facts.actor = env.GITHUB_ACTOR;
  const server = (env.GITHUB_SERVER_URL || 'https://github.com').replace(/\/+$/, '');
  const repository = env.GITHUB_REPOSITORY;
  if (!repository) return facts;
  const base = `${server}/${repository}`;
  const sha = env.GITHUB_SHA;
  if (sha && (mode === 'deploy' || mode === 'plan')) facts.commit = { sha, url: `${base}/commit/${sha}` };
  const { previousRelease: from, release: to } = outcome;
  if (from && to && from !== to && mode !== 'unlock') {
    facts.compare = { from, to, url: `${base}/compare/${encodeURIComponent(from)}...${encodeURIComponent(to)}` };
  }
  return facts;
}
