import { ReloadError } from '../../errors.js';
import { pollUntil } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { childrenCommand, parseChildren, type ProcessFacts } from './process-facts.js';

/** The live process `pid` (same start time) with its children, or undefined if it is gone. */
export async function readProcess(host: RemoteHost, pid: number, startTime: string): Promise<ProcessFacts | undefined> {
  const result = await host.exec(`read gunicorn pid ${pid}`, childrenCommand(pid, startTime));
  return parseChildren(result.stdout);
}

/**
 * Waits until `pid`'s workers are all new (none of `oldWorkers`) and as many as `count`.
 * Throws when the master dies (gunicorn halts when a new worker cannot boot) or time runs out.
 */
export async function waitForNewWorkers(
  host: RemoteHost,
  pid: number,
  startTime: string,
  oldWorkers: number[],
  count: number,
  timeoutSeconds: number,
): Promise<number[]> {
  const old = new Set(oldWorkers);
  let seen: number[] = [];
  const workers = await pollUntil(
    async () => {
      const master = await readProcess(host, pid, startTime);
      if (!master) throw new ReloadError(`gunicorn master ${pid} exited during the reload (a worker failed to boot halts it); see gunicorn's error log.`, host.name);
      seen = master.children;
      const settled = seen.length >= count && seen.every((worker) => !old.has(worker));
      return settled ? seen : undefined;
    },
    { timeoutMs: timeoutSeconds * 1000, intervalMs: 250 },
  );
  if (!workers) {
    const stale = seen.filter((worker) => old.has(worker));
    throw new ReloadError(
      `gunicorn master ${pid} did not replace its workers within ${timeoutSeconds}s (now ${seen.length} workers, old ones still alive: ${stale.join(', ') || 'none'}; expected ${count}).`,
      host.name,
    );
  }
  return workers;
}
