import { LeftoverStateError, errorMessage } from '../../errors.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { sh, type ShellFragment } from '../../remote/shell-quote.js';
import type { Log, PointCurrent, ReloadHandle, Settled } from '../server-driver.js';
import { describeProcesses, readProcess, signal, waitForGeneration, waitForNoWorkers, type ProcessRef } from './generation.js';
import { winchRecordOf } from './gunicorn-commands.js';
import { describeLeftover, parseSwitchLog, recogniseLeftover, type LeftoverFacts, type LeftoverState, type MasterGeneration } from './leftover-state.js';
import { verifyMaster, type GunicornMaster } from './master-check.js';
import { inspectMasterCommand, parsePidfileFacts } from './process-facts.js';
import { readyDirOf } from './ready-marks.js';
import { commit, findNewMaster, stopNewMaster, type Usr2Options } from './usr2-strategy.js';

export interface SettleOptions {
  pidfile: string;
  /** The systemd service whose MainPID is the master (the service input). */
  service?: string;
  appDir: string;
  switchLog: string;
  timeoutSeconds: number;
  /** Reloads the settled master into the release `current` names (the driver's own strategy). */
  reload: (master: GunicornMaster, log: Log) => Promise<ReloadHandle<GunicornMaster>>;
  /** The readiness gate on what serves now, expecting `release`: why it fails, or undefined when it passes (none: not checked). */
  readiness?: (python: string, release: string) => Promise<string | undefined>;
}

/** What a generation stopped while settling may take: gunicorn's default graceful_timeout (30 s) + margin. */
const STOP_SECONDS = 35;
/** Each step removes one anomaly; more than this means the host changes under us. */
const MAX_STEPS = 4;

/**
 * Settles a gunicorn host one step at a time (leftover-state.ts decides, this acts), reading
 * the host again after each step, until every worker serves the release `current` names.
 */
export async function settleGunicorn(host: RemoteHost, options: SettleOptions, pointCurrent: PointCurrent, log: Log): Promise<Settled> {
  let found: string | undefined;
  for (let step = 0; step < MAX_STEPS; step += 1) {
    const { facts, master, upgrade } = await readLeftover(host, options);
    const state = recogniseLeftover(facts);
    const line = describeLeftover(state, facts.current);
    found ??= line;
    if (state.kind === 'consistent') return { found, repaired: step > 0, serves: state.serves };
    log(`left by an interrupted run: ${line}`);
    await repair(host, options, state, { master, upgrade, current: facts.current }, pointCurrent, log);
  }
  throw new LeftoverStateError(`the host did not settle after ${MAX_STEPS} repairs (found: ${found}). Check gunicorn by hand, then deploy again.`, host.name);
}

interface Masters {
  master: GunicornMaster;
  upgrade?: ProcessRef;
  current: string;
}

async function repair(host: RemoteHost, options: SettleOptions, state: LeftoverState, masters: Masters, pointCurrent: PointCurrent, log: Log): Promise<void> {
  const { master, upgrade, current } = masters;
  const usr2 = usr2Options(options, master);
  const point = async (release: string) => {
    if (release === current) return;
    await pointCurrent(release);
    log(`current → releases/${release} (what serves)`);
  };
  switch (state.kind) {
    case 'current-ahead':
      return point(state.serves);
    case 'mixed-generations': {
      await point(state.keep);
      log(`reloading every worker into ${state.keep}`);
      const handle = await options.reload(master, log);
      await handle.commit();
      return;
    }
    case 'two-masters':
      await point(state.keep);
      log(`stopping the new master ${state.stop}; the old master ${master.pid} keeps serving ${state.keep}`);
      return stopNewMaster(host, usr2, master, log, upgrade);
    case 'retired-master':
      await point(state.keep);
      log(`HUP brings back the workers of master ${master.pid} (${state.keep})${upgrade ? `, then the new master ${upgrade.pid} is stopped` : ''}`);
      return revive(host, options, master, upgrade, log);
    case 'idle-old-master': {
      if (!upgrade) return;
      // The run died between WINCH and its readiness gate: the new release never passed it.
      const why = await options.readiness?.(master.python, state.keep);
      if (why !== undefined) {
        log(`the new master ${state.serving} (${state.keep}) does not pass the readiness gate the dead run never finished: ${why}`);
        await point(state.back);
        log(`HUP brings back the workers of master ${master.pid} (${state.back}), then the new master ${upgrade.pid} is stopped`);
        return revive(host, options, master, upgrade, log);
      }
      await point(state.keep);
      log(`committing the new master ${state.serving}: it is the only one with workers`);
      // Retired workers still finishing long requests end them first: TERM would cut them at graceful_timeout.
      if (master.workers.length) {
        log(`waiting for the retired workers ${master.workers.join(', ')} of master ${master.pid} to finish their requests`);
        await waitForNoWorkers(host, master, [upgrade.pid], STOP_SECONDS).catch((error: unknown) => log(`${errorMessage(error)} Stopping it anyway.`));
      }
      const fresh: GunicornMaster = { ...master, pid: upgrade.pid, startTime: upgrade.startTime };
      await commit(host, master, fresh, usr2, log);
      return;
    }
    case 'refuse':
      throw new LeftoverStateError(
        `a run that died left gunicorn as: ${state.why}. Nothing was signalled. Fix by hand: HUP the old master ${master.pid} (it forks workers of the release 'current' names, now ${current})${upgrade ? ` and TERM the new master ${upgrade.pid}` : ''}, then run the workflow again.`,
        host.name,
      );
    case 'consistent':
      return;
  }
}

/**
 * Gunicorn's way back for a WINCHed master: HUP restores its worker count and forks workers of
 * the release `current` names; once one has booted and the retired ones are gone, the
 * unfinished new master, if any, is stopped.
 */
async function revive(host: RemoteHost, options: SettleOptions, master: GunicornMaster, upgrade: ProcessRef | undefined, log: Log): Promise<void> {
  await signal(host, master, 'HUP', log);
  const back = await waitForGeneration(host, master, {
    old: master.workers,
    count: 1,
    notWorkers: upgrade ? [upgrade.pid] : [],
    timeoutSeconds: Math.max(options.timeoutSeconds, STOP_SECONDS),
  });
  log(`master ${master.pid} serves again with workers ${back.children.filter((pid) => pid !== upgrade?.pid).join(', ')}`);
  const usr2 = usr2Options(options, master);
  if (upgrade) await stopNewMaster(host, usr2, master, log, upgrade);
  // A new master that was killed (not stopped) left its `<pidfile>.2`: once its pid is reused, the
  // next run would take it for an upgrade in progress.
  else await host.exec('remove the pidfile a lost new master left', stalePidfileRemoval(`${usr2.pidfile}.2`));
}

/** Removes `pidfile` when it names no live process (empty, or a pid with no /proc entry). */
export function stalePidfileRemoval(pidfile: string): ShellFragment {
  return sh`p=$(tr -dc 0-9 < ${pidfile} 2>/dev/null) || exit 0; if [ -z "$p" ] || [ ! -d "/proc/$p" ]; then rm -f -- ${pidfile}; fi; true`;
}

/** What the usr2 strategy's own stop, commit and search need. */
function usr2Options(options: SettleOptions, master: GunicornMaster): Usr2Options {
  // Under a forking unit, gunicorn's pidfile is its PIDFile=, handed over at a commit (as in a deploy).
  const { unit } = master;
  return { pidfile: unit?.pidFile || options.pidfile, service: options.service, handover: unit !== undefined, readyDir: readyDirOf(options.pidfile), appDir: options.appDir, timeoutSeconds: options.timeoutSeconds, workers: 1, stopSeconds: STOP_SECONDS };
}

/**
 * Reads what settling needs: the pidfile's master (verified as this app's, an unfinished
 * upgrade aside), the master USR2 started if any (verified as its re-executed child), every
 * worker's start time, `current` and the switch log.
 */
async function readLeftover(host: RemoteHost, options: SettleOptions): Promise<{ facts: LeftoverFacts; master: GunicornMaster; upgrade?: ProcessRef }> {
  const inspecting = host.exec('inspect the gunicorn master', inspectMasterCommand(options, options.appDir));
  // The WINCH record lies beside the pidfile usr2 used: under a service, its PIDFile= (known once inspected).
  const recordOf = async () => winchRecordOf(options.service ? parsePidfileFacts((await inspecting).stdout).unit?.pidFile || options.pidfile : options.pidfile);
  const [inspected, aged] = await Promise.all([
    inspecting,
    recordOf().then((record) => host.exec('read the clock, current and the switch log', agesCommand(options.appDir, options.switchLog, record))),
  ]);
  const pidfile = parsePidfileFacts(inspected.stdout);
  // The `.2` master is looked at below, as the old master's verified child. A master with no
  // worker is taken only when the WINCH record names it: a retired master that a HUP revives.
  const retired = pidfile.master !== undefined && winchedAt(aged.stdout, pidfile.master) !== undefined;
  const master = verifyMaster({ ...pidfile, upgrade: undefined }, options, host.name, { retired });
  // The master's children are described while the `.2` master is looked for (usually there is none).
  const [upgrade, children] = await Promise.all([findNewMaster(host, usr2Options(options, master), master), describeProcesses(host, master.workers)]);
  const upgradeFacts = upgrade ? await readProcess(host, upgrade) : undefined;
  const oldWorkers = master.workers.filter((pid) => pid !== upgrade?.pid);
  const newWorkers = upgradeFacts?.children ?? [];
  const read = aged.stdout;
  const clock = parseClock(read);
  const described = [...children, ...(await describeProcesses(host, newWorkers))];
  const ageOf = (pids: number[]): MasterGeneration['workers'] =>
    described.filter((facts) => pids.includes(facts.pid)).map((facts) => ({ pid: facts.pid, startedAt: clock.bootEpoch + Number(facts.startTime) / clock.ticks }));
  const facts: LeftoverFacts = {
    current: clock.current,
    switches: parseSwitchLog(read.split('\n').filter((line) => line.startsWith('switch ')).map((line) => line.slice(7)).join('\n')),
    master: { pid: master.pid, workers: ageOf(oldWorkers), winchedAt: winchedAt(read, master) },
    upgrade: upgrade ? { pid: upgrade.pid, workers: ageOf(newWorkers) } : undefined,
  };
  return { facts, master: { ...master, workers: oldWorkers }, upgrade };
}

/** The host's clock (epoch and uptime read together, clock ticks per second), `current`, the WINCH record (gunicorn) and the switch log. */
export function agesCommand(appDir: string, switchLog: string, winchRecord?: string): ShellFragment {
  const winch = winchRecord ? sh`printf 'winch=%s\n' "$(head -n1 ${winchRecord} 2>/dev/null)"; ` : sh``;
  return sh`printf 'clock=%s %s %s\n' "$(date +%s.%N)" "$(cut -d' ' -f1 /proc/uptime)" "$(getconf CLK_TCK)"; printf 'current=%s\n' "$(readlink ${`${appDir}/current`})"; ${winch}sed 's/^/switch /' ${switchLog} 2>/dev/null; true`;
}

/** When a run sent WINCH to `master`, from the `winch=<pid> <start time> <epoch>` line: only a record naming this very process counts. */
export function winchedAt(stdout: string, master: ProcessRef): number | undefined {
  const [pid, startTime, epoch] = /^winch=(.*)$/m.exec(stdout)?.[1]?.trim().split(/\s+/) ?? [];
  if (Number(pid) !== master.pid || startTime !== master.startTime || !epoch) return undefined;
  const at = Number(epoch);
  return Number.isFinite(at) ? at : undefined;
}

/** Epoch of the boot in the host's clock, from `clock=<epoch> <uptime> <ticks>`. */
export function parseClock(stdout: string): { bootEpoch: number; ticks: number; current: string } {
  const [epoch = '0', uptime = '0', ticks = '100'] = /^clock=(.*)$/m.exec(stdout)?.[1]?.split(' ') ?? [];
  const current = (/^current=(.*)$/m.exec(stdout)?.[1] ?? '').replace(/\/+$/, '').split('/').pop() ?? '';
  return { bootEpoch: Number(epoch) - Number(uptime), ticks: Number(ticks) || 100, current };
}
