import { ReloadError, errorMessage } from '../../errors.js';
import { PROCESS_POLL, QUICK_POLL, pollUntil } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { sh } from '../../remote/shell-quote.js';
import { ReloadFailure, type Log, type ReloadHandle, type ReloadProgress } from '../server-driver.js';
import { describeProcesses, readProcess, sameProcess, signal, waitForGeneration, waitForNoWorkers, waitUntilGone, type ProcessRef } from './generation.js';
import { isGunicorn, type GunicornMaster } from './master-check.js';
import { pruneMarksCommand, readyHookCheck } from './ready-marks.js';
import { inspectMasterCommand, parsePidfileFacts, type ProcessFacts } from './process-facts.js';
import { parseReexecChildren, reexecChildCommand } from './reexec-child.js';

export interface Usr2Options {
  /** gunicorn's pidfile (under a forking systemd unit, its PIDFile=); `<pidfile>.2` marks the new master. */
  pidfile: string;
  /** The systemd service whose MainPID is the master, when the service input locates it. */
  service?: string;
  /**
   * systemd follows the master through the pidfile (a forking unit with PIDFile=): at the commit
   * the new master's pid is written there before the old master is told to exit, so that systemd
   * reads it when its main pid goes (and the old master, seeing another pid, leaves the file).
   */
  handover?: boolean;
  /** Where the ready hook leaves its marks (see ready-marks.ts). */
  readyDir: string;
  appDir: string;
  /** The whole boot of the new generation, new master included, must fit in this. */
  timeoutSeconds: number;
  /** Workers the new master must boot: the new release's configured count. */
  workers: number;
  /** How long a generation told to stop (WINCH, TERM) may take: graceful_timeout + margin. */
  stopSeconds: number;
  /** The run's cancellation: stops the wait for the new generation (the new master is then stopped, the old one never stopped serving). */
  signal?: AbortSignal;
  /** Hears USR2 go out and the new generation come up. */
  progress?: ReloadProgress;
}

/** After TERM and QUIT, the last resort for a master that must not be left running. */
const KILL_WAIT_SECONDS = 10;

/**
 * USR2: the old master forks a new master that re-executes gunicorn from `current` (so it
 * loads the new code, preload apps included) beside the old one on the same sockets. Once
 * the new generation has booted, WINCH retires the old workers; the old master stays, idle,
 * so that reverting is only a HUP away until commit TERMs it.
 */
export async function usr2Reload(host: RemoteHost, old: GunicornMaster, options: Usr2Options, log: Log): Promise<ReloadHandle<GunicornMaster>> {
  const isReady = await readyHookCheck(host, options.readyDir, old.workers);
  if (isReady) await host.exec('prune stale ready marks', pruneMarksCommand(options.readyDir, old.workers));
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  const secondsLeft = () => Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
  await signal(host, old, 'USR2', log);
  options.progress?.('signalled');
  let child: ProcessRef | undefined;
  let fresh: ProcessFacts;
  try {
    child = await waitForNewMaster(host, old, options, secondsLeft());
    log(`new master ${child.pid} (re-executed by ${old.pid}) is up; waiting for ${options.workers} ${isReady ? 'workers to report ready (ready hook)' : 'booted workers'}`);
    fresh = await waitForGeneration(host, child, {
      old: [],
      count: options.workers,
      timeoutSeconds: secondsLeft(),
      isReady,
      signal: options.signal,
      exitMessage: `the new master ${child.pid} exited while booting (its workers could not boot; see gunicorn's error log). The old master ${old.pid} never stopped serving.`,
    });
    log(`new master ${fresh.pid} booted workers ${fresh.children.join(', ')}`);
    options.progress?.('booted');
  } catch (error) {
    // The old master never stopped serving: removing whatever the new one left is all it takes.
    await stopNewMaster(host, options, old, log, child).catch((cleanup: unknown) => log(`cleanup of the new master failed: ${errorMessage(cleanup)}`));
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
    await waitForNoWorkers(host, old, [fresh.pid], options.stopSeconds);
    log(`old master ${old.pid} retired workers ${old.workers.join(', ')}; it stays until commit, for a quick revert`);
  } catch (error) {
    throw new ReloadFailure(error as Error, host.name, false, handle);
  }
  return handle;
}

/**
 * Finds the master USR2 started: the old master's re-executed child (see reexec-child.ts), or
 * the live gunicorn `<pidfile>.2` names. The child shows at once, so a preload app that loads
 * for long is followed from the start instead of being missed until its `.2` appears.
 */
async function waitForNewMaster(host: RemoteHost, old: GunicornMaster, options: Usr2Options, timeoutSeconds: number): Promise<ProcessRef> {
  const found = await pollUntil(
    async () => {
      const stdout = (await host.exec('look for the new master', newMasterCommand(options, old))).stdout;
      const facts = parsePidfileFacts(stdout);
      if (!facts.master || facts.master.pid !== old.pid) throw new ReloadError(`the old master ${old.pid} is gone from ${options.pidfile} during the upgrade.`, host.name);
      return parseReexecChildren(stdout)[0] ?? upgradeOf(facts.upgrade, old);
    },
    { timeoutMs: timeoutSeconds * 1000, ...PROCESS_POLL, signal: options.signal, what: 'wait for the new master' },
  );
  if (!found) throw new ReloadError(`no new master appeared within ${timeoutSeconds}s after USR2 (it failed to start; see gunicorn's error log).`, host.name);
  return found;
}

function newMasterCommand(options: Usr2Options, old: GunicornMaster) {
  return sh`${inspectMasterCommand(options, options.appDir)}; ${reexecChildCommand(old)}`;
}

/** The process `<pidfile>.2` names, when it is a gunicorn child of the old master. */
function upgradeOf(upgrade: ProcessFacts | undefined, old: GunicornMaster): ProcessRef | undefined {
  return upgrade && upgrade.ppid === old.pid && isGunicorn(upgrade) ? { pid: upgrade.pid, startTime: upgrade.startTime } : undefined;
}

/** Makes the new master the only one: TERM the old, wait for the new one to promote itself. */
export async function commit(host: RemoteHost, old: GunicornMaster, fresh: GunicornMaster, options: Usr2Options, log: Log): Promise<GunicornMaster> {
  if (options.handover) await handOverPidfile(host, old, fresh, options, log);
  await signal(host, old, 'TERM', log);
  if (!(await waitUntilGone(host, old, options.stopSeconds))) throw new ReloadError(`old master ${old.pid} did not exit after TERM.`, host.name);
  // The new master promotes itself (renames <pidfile>.2) at the top of its loop, which otherwise
  // sleeps up to 1 s: SIGCHLD wakes it, and in gunicorn 20.1 to 26.1 only makes it reap exited
  // children (waitpid with WNOHANG; none here), so the promotion follows at once.
  await signal(host, fresh, 'CHLD', log);
  const promoted = await pollUntil(
    async () => {
      const facts = parsePidfileFacts((await host.exec('check the promotion', inspectMasterCommand(options, options.appDir))).stdout);
      // Under a service the master is systemd's MainPID: this also proves systemd followed the new master.
      return facts.master?.pid === fresh.pid && !facts.upgradePid ? facts.master : undefined;
    },
    { timeoutMs: 15_000, ...QUICK_POLL },
  );
  if (!promoted) {
    const what = options.service ? `${options.service}'s MainPID (did systemd stop the service?)` : options.pidfile;
    throw new ReloadError(`new master ${fresh.pid} did not take over ${what} after the old master exited.`, host.name);
  }
  log(`old master ${old.pid} stopped; ${options.service ? `${options.service}'s MainPID is` : `${options.pidfile} names`} master ${fresh.pid}`);
  return { ...fresh, workers: promoted.children };
}

/**
 * Writes the new master's pid into the pidfile (atomically, only while it still names the old
 * master), so that systemd, reading PIDFile= when the old master exits, follows the new one.
 * Gunicorn's own halt unlinks the pidfile only when it names the exiting master itself.
 */
async function handOverPidfile(host: RemoteHost, old: GunicornMaster, fresh: GunicornMaster, options: Usr2Options, log: Log): Promise<void> {
  const { pidfile } = options;
  const temporary = `${pidfile}.graceful-deploy`;
  const handed = await host.exec(
    'hand the pidfile to the new master',
    sh`[ "$(tr -dc 0-9 < ${pidfile} 2>/dev/null)" = ${String(old.pid)} ] && printf '%s\n' ${String(fresh.pid)} > ${temporary} && mv -f ${temporary} ${pidfile} && echo handed; true`,
  );
  if (!handed.stdout.includes('handed')) throw new ReloadError(`${pidfile} does not name the old master ${old.pid}: cannot hand it to the new master ${fresh.pid}, so systemd could not follow it. The old master was not stopped.`, host.name);
  log(`${pidfile} now names the new master ${fresh.pid}, for systemd to follow when the old master exits`);
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
  const back = await waitForGeneration(host, old, {
    old: oldWorkers,
    count: old.workers.length,
    notWorkers: [fresh.pid],
    timeoutSeconds: Math.max(options.timeoutSeconds, options.stopSeconds),
  });
  log(`old master ${old.pid} serves again with workers ${back.children.filter((pid) => pid !== fresh.pid).join(', ')}`);
  await stopNewMaster(host, options, old, log, fresh);
  return { ...old, workers: back.children.filter((pid) => pid !== fresh.pid) };
}

/**
 * Stops the new master and waits until it and its workers are gone: TERM (its workers get
 * graceful_timeout to finish their requests), QUIT only after that, KILL as the last resort,
 * since a master left behind would serve the failed release beside the old one.
 */
export async function stopNewMaster(host: RemoteHost, options: Usr2Options, old: GunicornMaster, log: Log, known?: ProcessRef): Promise<void> {
  const target = known ?? (await findNewMaster(host, options, old));
  if (!target) return;
  const facts = await readProcess(host, target);
  if (!facts) return removeStalePidfile(host, options, target, log);
  const workers = await describeProcesses(host, facts.children);
  let stopped = false;
  for (const [name, seconds] of [['TERM', options.stopSeconds], ['QUIT', KILL_WAIT_SECONDS], ['KILL', KILL_WAIT_SECONDS]] as const) {
    await signal(host, target, name, log);
    stopped = await waitUntilGone(host, target, seconds);
    if (stopped) break;
  }
  if (!stopped) throw new ReloadError(`new master ${target.pid} did not exit after TERM, QUIT and KILL.`, host.name);
  await waitForOrphans(host, workers, target.pid, options.stopSeconds);
  log(`new master ${target.pid} and its workers are gone`);
  await removeStalePidfile(host, options, target, log);
}

/**
 * Removes `<pidfile>.2` when it still names the new master, now gone. Gunicorn unlinks it when
 * it halts, except when a second worker's boot error interrupts its stop (20.1: the HaltServer
 * escapes, the unlink is skipped): a stale file would say an upgrade is under way.
 */
async function removeStalePidfile(host: RemoteHost, options: Usr2Options, gone: ProcessRef, log: Log): Promise<void> {
  const stale = `${options.pidfile}.2`;
  const removed = await host.exec(`remove a stale ${stale}`, sh`[ "$(tr -dc 0-9 < ${stale} 2>/dev/null)" = ${String(gone.pid)} ] && rm -f ${stale} && echo removed; true`);
  if (removed.stdout.includes('removed')) log(`${stale} still named the stopped master ${gone.pid}: removed`);
}

/** The new master when we lost track of it, if there is one. */
export async function findNewMaster(host: RemoteHost, options: Usr2Options, old: GunicornMaster): Promise<ProcessRef | undefined> {
  const stdout = (await host.exec('look for the new master', newMasterCommand(options, old))).stdout;
  return parseReexecChildren(stdout)[0] ?? upgradeOf(parsePidfileFacts(stdout).upgrade, old);
}

/** Gunicorn workers exit when their parent changes; make sure they did. */
async function waitForOrphans(host: RemoteHost, workers: ProcessRef[], parent: number, timeoutSeconds: number): Promise<void> {
  if (workers.length === 0) return;
  let left: number[] = [];
  const gone = await pollUntil(
    async () => {
      const alive = await describeProcesses(host, workers.map((worker) => worker.pid));
      left = alive.filter((facts) => workers.some((worker) => sameProcess(worker, facts))).map((facts) => facts.pid);
      return left.length === 0 ? true : undefined;
    },
    { timeoutMs: timeoutSeconds * 1000, ...PROCESS_POLL },
  );
  if (!gone) throw new ReloadError(`workers of the stopped master ${parent} are still alive: ${left.join(', ')}.`, host.name);
}
