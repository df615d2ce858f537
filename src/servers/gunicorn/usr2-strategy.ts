import { ReloadError, errorMessage } from '../../errors.js';
import { pollUntil } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { ReloadFailure, type Log, type ReloadHandle } from '../server-driver.js';
import { readProcess, signal, waitForGeneration, waitForNoWorkers, waitUntilGone, type ProcessRef } from './generation.js';
import { isGunicorn, type GunicornMaster } from './master-check.js';
import { pruneMarksCommand, readyHookCheck } from './ready-marks.js';
import { describePidsCommand, inspectPidfileCommand, parseDescribedPids, parsePidfileFacts, type ProcessFacts } from './process-facts.js';

export interface Usr2Options {
  pidfile: string;
  /** Where the ready hook leaves its marks (see ready-marks.ts). */
  readyDir: string;
  appDir: string;
  timeoutSeconds: number;
}

/** Seconds the old generation gets to finish in-flight requests when it is stopped. */
const STOP_SECONDS = 35;

/**
 * USR2: the old master forks a new master that re-executes gunicorn from `current` (so it
 * loads the new code, preload apps included) beside the old one on the same sockets. Once
 * the new generation has booted, WINCH retires the old workers; the old master stays, idle,
 * so that reverting is only a HUP away until commit TERMs it.
 */
export async function usr2Reload(host: RemoteHost, old: GunicornMaster, options: Usr2Options, log: Log): Promise<ReloadHandle<GunicornMaster>> {
  const isReady = await readyHookCheck(host, options.readyDir, old.workers);
  if (isReady) await host.exec('prune stale ready marks', pruneMarksCommand(options.readyDir, old.workers));
  await signal(host, old, 'USR2', log);
  let fresh: ProcessFacts;
  try {
    fresh = await waitForNewMaster(host, old, options);
    log(`new master ${fresh.pid} (${options.pidfile}.2) is up; waiting for ${old.workers.length} ${isReady ? 'workers to report ready (ready hook)' : 'booted workers'}`);
    fresh = await waitForGeneration(host, fresh, {
      old: [],
      count: old.workers.length,
      timeoutSeconds: options.timeoutSeconds,
      isReady,
      exitMessage: `the new master ${fresh.pid} exited while booting (its workers could not boot; see gunicorn's error log). The old master ${old.pid} never stopped serving.`,
    });
    log(`new master ${fresh.pid} booted workers ${fresh.children.join(', ')}`);
  } catch (error) {
    // The old master never stopped serving: removing whatever the new one left is all it takes.
    await stopNewMaster(host, options, old, log).catch((cleanup: unknown) => log(`cleanup of the new master failed: ${errorMessage(cleanup)}`));
    throw new ReloadFailure(error as Error, host.name, true);
  }

  const newMaster: GunicornMaster = { ...old, pid: fresh.pid, startTime: fresh.startTime, workers: fresh.children, cwd: fresh.cwd };
  const handle: ReloadHandle<GunicornMaster> = {
    master: newMaster,
    commit: () => commit(host, old, newMaster, options, log),
    revert: () => revert(host, old, newMaster, options, log),
  };
  try {
    await signal(host, old, 'WINCH', log);
    await waitForNoWorkers(host, old, [fresh.pid], STOP_SECONDS);
    log(`old master ${old.pid} retired workers ${old.workers.join(', ')}; it stays until commit, for a quick revert`);
  } catch (error) {
    throw new ReloadFailure(error as Error, host.name, false, handle);
  }
  return handle;
}

/** Waits until `<pidfile>.2` names a live gunicorn whose parent is the old master. */
async function waitForNewMaster(host: RemoteHost, old: GunicornMaster, options: Usr2Options): Promise<ProcessFacts> {
  const found = await pollUntil(
    async () => {
      const facts = parsePidfileFacts((await host.exec('look for the new master', inspectPidfileCommand(options.pidfile, options.appDir))).stdout);
      if (!facts.master || facts.master.pid !== old.pid) throw new ReloadError(`the old master ${old.pid} is gone from ${options.pidfile} during the upgrade.`, host.name);
      const upgrade = facts.upgrade;
      return upgrade && upgrade.ppid === old.pid && isGunicorn(upgrade) ? upgrade : undefined;
    },
    { timeoutMs: Math.min(options.timeoutSeconds, 60) * 1000, intervalMs: 250 },
  );
  if (!found) throw new ReloadError(`no new master appeared in ${options.pidfile}.2 after USR2 (it failed to start; see gunicorn's error log).`, host.name);
  return found;
}

/** Makes the new master the only one: TERM the old, wait for the new one to promote itself. */
async function commit(host: RemoteHost, old: GunicornMaster, fresh: GunicornMaster, options: Usr2Options, log: Log): Promise<GunicornMaster> {
  await signal(host, old, 'TERM', log);
  if (!(await waitUntilGone(host, old, STOP_SECONDS))) throw new ReloadError(`old master ${old.pid} did not exit after TERM.`, host.name);
  const promoted = await pollUntil(
    async () => {
      const facts = parsePidfileFacts((await host.exec('check the promotion', inspectPidfileCommand(options.pidfile, options.appDir))).stdout);
      return facts.master?.pid === fresh.pid && !facts.upgradePid ? facts.master : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250 },
  );
  if (!promoted) throw new ReloadError(`new master ${fresh.pid} did not take over ${options.pidfile} after the old master exited.`, host.name);
  log(`old master ${old.pid} stopped; ${options.pidfile} names master ${fresh.pid}`);
  return { ...fresh, workers: promoted.children };
}

/**
 * Gunicorn's documented way back (after `current` points to the previous release again):
 * HUP the old master so it forks workers of the previous code, then TERM and, if need be,
 * QUIT the new master, and check none of its workers remain.
 */
async function revert(host: RemoteHost, old: GunicornMaster, fresh: GunicornMaster, options: Usr2Options, log: Log): Promise<GunicornMaster> {
  const current = await readProcess(host, old);
  if (!current) throw new ReloadError(`old master ${old.pid} is gone: cannot revert to it.`, host.name);
  const oldWorkers = current.children.filter((pid) => pid !== fresh.pid);
  await signal(host, old, 'HUP', log);
  const back = await waitForGeneration(host, old, { old: oldWorkers, count: old.workers.length, notWorkers: [fresh.pid], timeoutSeconds: options.timeoutSeconds });
  log(`old master ${old.pid} serves again with workers ${back.children.filter((pid) => pid !== fresh.pid).join(', ')}`);
  await stopNewMaster(host, options, old, log, fresh);
  return { ...old, workers: back.children.filter((pid) => pid !== fresh.pid) };
}

/** Stops the new master (TERM, then QUIT) and waits until it and its workers are gone. */
async function stopNewMaster(host: RemoteHost, options: Usr2Options, old: GunicornMaster, log: Log, known?: ProcessRef): Promise<void> {
  let target = known;
  if (!target) {
    const facts = parsePidfileFacts((await host.exec('look for the new master', inspectPidfileCommand(options.pidfile, options.appDir))).stdout);
    const upgrade = facts.upgrade;
    if (!upgrade || upgrade.ppid !== old.pid || !isGunicorn(upgrade)) return;
    target = upgrade;
  }
  const facts = await readProcess(host, target);
  if (!facts) return;
  const workers = await describe(host, facts.children);
  await signal(host, target, 'TERM', log);
  if (!(await waitUntilGone(host, target, STOP_SECONDS))) {
    await signal(host, target, 'QUIT', log);
    if (!(await waitUntilGone(host, target, 10))) throw new ReloadError(`new master ${target.pid} did not exit after TERM and QUIT.`, host.name);
  }
  await waitForOrphans(host, workers, target.pid);
  log(`new master ${target.pid} and its workers are gone`);
}

/** Gunicorn workers exit when their parent changes; make sure they did. */
async function waitForOrphans(host: RemoteHost, workers: ProcessRef[], parent: number): Promise<void> {
  if (workers.length === 0) return;
  let left: number[] = [];
  const gone = await pollUntil(
    async () => {
      const alive = await describe(host, workers.map((worker) => worker.pid));
      left = alive.filter((facts) => workers.some((worker) => worker.pid === facts.pid && worker.startTime === facts.startTime)).map((facts) => facts.pid);
      return left.length === 0 ? true : undefined;
    },
    { timeoutMs: STOP_SECONDS * 1000, intervalMs: 250 },
  );
  if (!gone) throw new ReloadError(`workers of the stopped master ${parent} are still alive: ${left.join(', ')}.`, host.name);
}

async function describe(host: RemoteHost, pids: number[]): Promise<ProcessFacts[]> {
  if (pids.length === 0) return [];
  return parseDescribedPids((await host.exec('read gunicorn workers', describePidsCommand(pids))).stdout, pids);
}
