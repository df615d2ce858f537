/**
 * What a sandbox host's gunicorn really is, read from /proc inside the host: which master the
 * pidfile names, what it runs and where, its workers, and which release each worker serves.
 * The strategy tests compare these before and after a deploy.
 */
import type { Sandbox } from '../../support/sandbox.js';

export interface MasterFacts {
  /** Pid the pidfile names (0 when there is none). */
  pid: number;
  /** Whether that pid is a live process. */
  alive: boolean;
  /** /proc/<pid>/cmdline with NULs as spaces: a setproctitle title such as `gunicorn: master [app:application]`. */
  cmdline: string;
  /** readlink /proc/<pid>/cwd: the real release directory the master runs in. */
  cwd: string;
  /** Child processes of the master (its workers, or a USR2 child master). */
  children: number[];
  /** Contents of `<pidfile>.2` when it exists: a USR2 upgrade not finished. */
  upgradePid: number | null;
}

/** The pidfile every fixture release uses. */
export function pidfileOf(sb: Sandbox): string {
  return `${sb.appDir}/run/gunicorn.pid`;
}

export async function masterFacts(sb: Sandbox, host: number): Promise<MasterFacts> {
  const pidfile = pidfileOf(sb);
  const script = [
    `p=$(tr -dc 0-9 < ${pidfile} 2>/dev/null)`,
    `echo "pid=$p"`,
    `if [ -n "$p" ] && [ -d /proc/$p ]; then echo alive=1; echo "cmdline=$(tr '\\0' ' ' < /proc/$p/cmdline)"; echo "cwd=$(readlink /proc/$p/cwd)"; echo "children=$(ps -o pid= --ppid $p | tr -s ' \\n' '  ')"; fi`,
    `echo "upgrade=$(cat ${pidfile}.2 2>/dev/null | tr -dc 0-9)"`,
  ].join('; ');
  const result = await sb.exec(host, script);
  const values = new Map(
    result.stdout
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).trim()] as const),
  );
  const upgrade = values.get('upgrade') ?? '';
  return {
    pid: Number(values.get('pid') || 0),
    alive: values.get('alive') === '1',
    cmdline: values.get('cmdline') ?? '',
    cwd: values.get('cwd') ?? '',
    children: (values.get('children') ?? '').split(/\s+/).filter(Boolean).map(Number),
    upgradePid: upgrade ? Number(upgrade) : null,
  };
}

/** The pids among `pids` that are live processes on the host (zombies count as gone). */
export async function alivePids(sb: Sandbox, host: number, pids: number[]): Promise<number[]> {
  if (pids.length === 0) return [];
  const result = await sb.exec(host, `for p in ${pids.join(' ')}; do s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -c1); [ -n "$s" ] && [ "$s" != Z ] && echo $p; done; true`);
  return result.stdout.split(/\s+/).filter(Boolean).map(Number);
}

/**
 * Which release each worker of the host serves: concurrent slow requests on the host itself
 * (so every sync worker takes some), repeated until each of `workers` has answered.
 * Returns worker pid → versions it answered with.
 */
export async function versionsByWorker(sb: Sandbox, host: number, workers: number[]): Promise<Record<number, string[]>> {
  const seen: Record<number, Set<string>> = {};
  for (let attempt = 0; attempt < 8; attempt++) {
    const result = await sb.exec(
      host,
      `for i in 1 2 3 4 5 6; do curl -s -m 10 -o /dev/null -D - 'http://127.0.0.1:8000/sleep?ms=150' & done; wait`,
      { timeoutMs: 30_000 },
    );
    // Each response's headers: pair X-Worker-Pid with X-App-Version.
    for (const block of result.stdout.split(/\r?\n\r?\n/)) {
      const pid = /^x-worker-pid:\s*(\d+)/im.exec(block)?.[1];
      const version = /^x-app-version:\s*(\S+)/im.exec(block)?.[1];
      if (pid && version) (seen[Number(pid)] ??= new Set()).add(version);
    }
    if (workers.every((pid) => seen[pid])) break;
  }
  return Object.fromEntries(Object.entries(seen).map(([pid, versions]) => [pid, [...versions].sort()]));
}
