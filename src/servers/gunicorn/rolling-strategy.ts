import { ReloadError, errorMessage } from '../../errors.js';
import { pollUntil } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { ReloadFailure, type Log, type ReloadHandle } from '../server-driver.js';
import { masterHalted, readProcess, signal } from './generation.js';
import type { GunicornMaster } from './master-check.js';
import { pruneMarksCommand, readyHookCheck } from './ready-marks.js';

export interface RollingOptions {
  readyDir: string;
  timeoutSeconds: number;
}

/**
 * Rolling (seed 000's "reload ++"): for each worker, TTIN adds one that imports the code
 * `current` points to; once that worker is ready, TTOU retires the oldest. Capacity never
 * drops below N and no request waits for a boot. Readiness of one worker is its mark from
 * hooks/graceful_deploy_hook.py when the hook is installed, else the weaker "booted" signal
 * (the worker reached its request loop).
 */
export async function rollingReload(host: RemoteHost, master: GunicornMaster, options: RollingOptions, log: Log): Promise<ReloadHandle<GunicornMaster>> {
  const count = master.workers.length;
  const hook = await readyHookCheck(host, options.readyDir, master.workers);
  log(hook ? `ready hook active: each new worker must report ready (${options.readyDir})` : 'no ready hook marks found: a new worker counts as ready once it has booted (weaker; see README)');

  const replaceAll = async (): Promise<GunicornMaster> => {
    const facts = await readProcess(host, master);
    if (!facts) throw new ReloadError(`gunicorn master ${master.pid} is gone.`, host.name);
    let workers = facts.children;
    const originals = new Set(workers);
    await host.exec('prune stale ready marks', pruneMarksCommand(options.readyDir, workers));
    for (let round = 0; round < originals.size; round += 1) {
      await signal(host, master, 'TTIN', log);
      const added = await waitForNewWorker(host, master, workers, hook, options);
      await signal(host, master, 'TTOU', log);
      workers = await waitForCount(host, master, [...workers, added], originals.size, options.timeoutSeconds);
      log(`worker ${added} ready (${round + 1}/${originals.size}); workers now ${workers.join(', ')}`);
    }
    // A failed round can leave one extra worker: bring the count back to what it was.
    while (workers.length > count) {
      await signal(host, master, 'TTOU', log);
      workers = await waitForCount(host, master, workers, workers.length - 1, options.timeoutSeconds);
    }
    const stale = workers.filter((pid) => originals.has(pid));
    if (stale.length) throw new ReloadError(`workers ${stale.join(', ')} of the previous generation are still running after the rolling reload.`, host.name);
    return { ...master, workers };
  };

  const revert = () => replaceAll();
  const handle = (reloaded: GunicornMaster): ReloadHandle<GunicornMaster> => ({ master: reloaded, commit: async () => reloaded, revert });
  try {
    return handle(await replaceAll());
  } catch (error) {
    log(`rolling reload stopped: ${errorMessage(error)}`);
    // Workers of both releases may be serving now; reverting rolls every worker again.
    throw new ReloadFailure(error as Error, host.name, false, handle(master));
  }
}

/** Waits for a worker not in `known` that has booted and, with the hook, reported ready. */
async function waitForNewWorker(
  host: RemoteHost,
  master: GunicornMaster,
  known: number[],
  hook: ((workers: number[]) => Promise<number[]>) | undefined,
  options: RollingOptions,
): Promise<number> {
  let failure = 'no new worker yet';
  const added = await pollUntil(
    async () => {
      const facts = await readProcess(host, master);
      if (!facts) throw new ReloadError(masterHalted(master.pid), host.name);
      const pid = facts.booted.find((worker) => !known.includes(worker));
      if (pid === undefined) return undefined;
      if (!hook) return pid;
      if ((await hook([pid])).includes(pid)) return pid;
      failure = `worker ${pid} has not reported ready`;
      return undefined;
    },
    { timeoutMs: options.timeoutSeconds * 1000, intervalMs: 250 },
  );
  if (added === undefined) throw new ReloadError(`no new worker became ready within ${options.timeoutSeconds}s after TTIN (${failure}).`, host.name);
  return added;
}

/** After TTOU: waits until the master has `count` workers, all from `candidates` (the oldest one gone). */
async function waitForCount(host: RemoteHost, master: GunicornMaster, candidates: number[], count: number, timeoutSeconds: number): Promise<number[]> {
  const workers = await pollUntil(
    async () => {
      const facts = await readProcess(host, master);
      if (!facts) throw new ReloadError(`gunicorn master ${master.pid} exited during the rolling reload.`, host.name);
      return facts.children.length === count && facts.children.every((pid) => candidates.includes(pid)) ? facts.children : undefined;
    },
    { timeoutMs: timeoutSeconds * 1000, intervalMs: 250 },
  );
  if (!workers) throw new ReloadError(`the oldest worker did not exit within ${timeoutSeconds}s of TTOU.`, host.name);
  return workers;
}
