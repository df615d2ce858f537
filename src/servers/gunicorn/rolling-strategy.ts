import { ReloadError, errorMessage } from '../../errors.js';
import { PROCESS_POLL, PROCESS_POLL_MS, pollUntil, sleep, throwIfCancelled } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { ReloadFailure, type Log, type ReloadHandle } from '../server-driver.js';
import { describeProcesses, masterHalted, readProcess, sameProcess, signal, type ProcessRef } from './generation.js';
import type { GunicornMaster } from './master-check.js';
import { pruneMarksCommand, readyHookCheck } from './ready-marks.js';

export interface RollingOptions {
  readyDir: string;
  timeoutSeconds: number;
  /** Workers the new generation must have: the new release's configured count. */
  workers: number;
  /** How long a worker retired by TTOU may take to finish its requests (graceful_timeout + margin). */
  stopSeconds: number;
  /** The run's cancellation: the roll stops after the worker in hand, never halfway through one. */
  signal?: AbortSignal;
}

/** The master's live workers, each with its start time, and which of them have booted. */
export interface WorkerState {
  workers: ProcessRef[];
  booted: number[];
}

/**
 * Rolling (seed 000's "reload ++"): TTIN adds a worker that imports the code `current` points
 * to; once every new worker is ready, TTOU retires the oldest, which is one of the previous
 * generation as long as any is left. Capacity never drops below the target and no request
 * waits for a boot. Readiness of a worker is its mark from hooks/graceful_deploy_hook.py when
 * the hook is installed, else the weaker "booted" signal (the worker reached its request loop).
 *
 * Workers are told apart by generation, not by "the one that appeared after TTIN": with
 * max_requests the master replaces recycled workers at any moment, so a new pid may be a
 * respawn. The previous generation is the set of workers (pid + start time) alive when the
 * roll began; everything else was forked since, from `current`. Each step waits for a settled
 * state (the count gunicorn aims for, every new worker ready), whichever pids make it up.
 */
export async function rollingReload(host: RemoteHost, master: GunicornMaster, options: RollingOptions, log: Log): Promise<ReloadHandle<GunicornMaster>> {
  const hook = await readyHookCheck(host, options.readyDir, master.workers);
  log(hook ? `ready hook active: each new worker must report ready (${options.readyDir})` : 'no ready hook marks found: a new worker counts as ready once it has booted (weaker; see docs/gunicorn.md)');
  let previousCount: number | undefined;

  const replaceAll = async (target: number, cancel?: AbortSignal): Promise<GunicornMaster> => {
    const start = await steadyWorkers(host, master);
    previousCount ??= start.count;
    const originals = start.workers;
    const isOriginal = (worker: ProcessRef) => originals.some((original) => sameProcess(original, worker));
    await host.exec('prune stale ready marks', pruneMarksCommand(options.readyDir, originals.map((worker) => worker.pid)));
    // What gunicorn's num_workers is: each TTIN adds one, each TTOU removes one.
    let expected = start.count;
    const step = async (name: 'TTIN' | 'TTOU') => {
      await signal(host, master, name, log);
      expected += name === 'TTIN' ? 1 : -1;
      return settle(host, master, { count: expected, isOriginal, hook, after: name, timeoutSeconds: name === 'TTIN' ? options.timeoutSeconds : options.stopSeconds });
    };
    // Each original leaves after one TTIN and one TTOU, the count moves by |target - start|; a
    // recycled worker seen as settled too early costs a round more.
    const maxSteps = 3 * originals.length + Math.abs(target - start.count) + 4;
    let state = await readWorkers(host, master);
    for (let steps = 0; ; steps += 1) {
      const old = state.workers.filter(isOriginal).length;
      const name = nextRollingStep(old, expected, target);
      if (!name) break;
      throwIfCancelled(cancel, 'roll the next worker', host.name);
      if (steps >= maxSteps) throw new ReloadError(`the rolling reload did not converge after ${steps} TTIN/TTOU signals (${old} workers of the previous generation left).`, host.name);
      state = await step(name);
      log(`${name}: ${expected} workers, ${state.workers.filter(isOriginal).length} of the previous generation left (${state.workers.map((worker) => worker.pid).join(', ')})`);
    }
    return { ...master, workers: state.workers.map((worker) => worker.pid) };
  };

  const revert = () => replaceAll(previousCount ?? master.workers.length);
  const handle = (reloaded: GunicornMaster): ReloadHandle<GunicornMaster> => ({ master: reloaded, commit: async () => reloaded, revert });
  try {
    return handle(await replaceAll(options.workers, options.signal));
  } catch (error) {
    log(`rolling reload stopped: ${errorMessage(error)}`);
    // Workers of both releases may be serving now; reverting rolls every worker again.
    throw new ReloadFailure(error as Error, host.name, false, handle(master));
  }
}

/**
 * The next signal of a roll, from how many workers of the previous generation are left, how
 * many gunicorn keeps (`expected`) and how many the new release wants; undefined when done.
 * Capacity first: TTIN while the count is at or below the target and old workers remain, TTOU
 * (which stops the oldest: an old worker while any is left) once a ready new one is extra.
 */
export function nextRollingStep(oldLeft: number, expected: number, target: number): 'TTIN' | 'TTOU' | undefined {
  if (expected < target || (oldLeft > 0 && expected === target)) return 'TTIN';
  if (expected > target) return 'TTOU';
  return undefined;
}

async function readWorkers(host: RemoteHost, master: GunicornMaster): Promise<WorkerState> {
  const facts = await readProcess(host, master);
  if (!facts) throw new ReloadError(masterHalted(master.pid), host.name);
  const workers = (await describeProcesses(host, facts.children)).map(({ pid, startTime }) => ({ pid, startTime }));
  return { workers, booted: facts.booted };
}

/**
 * The workers before the roll and how many gunicorn keeps: the most seen over a few reads, as
 * a recycled worker is briefly missing between its exit and its replacement.
 */
async function steadyWorkers(host: RemoteHost, master: GunicornMaster): Promise<{ workers: ProcessRef[]; count: number }> {
  const seen: ProcessRef[] = [];
  let count = 0;
  for (let read = 0; read < 3; read += 1) {
    if (read > 0) await sleep(PROCESS_POLL_MS);
    const state = await readWorkers(host, master);
    count = Math.max(count, state.workers.length);
    for (const worker of state.workers) if (!seen.some((known) => sameProcess(known, worker))) seen.push(worker);
  }
  return { workers: seen, count };
}

interface Settle {
  count: number;
  isOriginal: (worker: ProcessRef) => boolean;
  hook: ((workers: number[]) => Promise<number[]>) | undefined;
  after: 'TTIN' | 'TTOU';
  timeoutSeconds: number;
}

/**
 * What a step still waits for in `state`, or undefined once it is done. After TTIN: the count
 * gunicorn aims for, and every worker forked since the roll began booted. After TTOU only the
 * count: the retired worker is gone, and a worker still booting there is a max_requests respawn
 * the master replaced on its own (its new workers were all booted before this TTOU), which
 * under load may always be one and must not hold the roll.
 */
export function stepWaitsFor(after: 'TTIN' | 'TTOU', state: WorkerState, count: number, isOriginal: (worker: ProcessRef) => boolean): string | undefined {
  if (state.workers.length !== count) return `${state.workers.length} workers, want ${count}`;
  if (after === 'TTOU') return undefined;
  const unbooted = state.workers.filter((worker) => !isOriginal(worker) && !state.booted.includes(worker.pid)).map((worker) => worker.pid);
  return unbooted.length > 0 ? `new workers ${unbooted.join(', ')} not booted` : undefined;
}

/** Waits until the step is done (stepWaitsFor) and, after TTIN, every new worker is ready. */
async function settle(host: RemoteHost, master: GunicornMaster, wait: Settle): Promise<WorkerState> {
  let last: WorkerState | undefined;
  let waiting = 'no new worker yet';
  const settled = await pollUntil(
    async () => {
      const state = await readWorkers(host, master);
      last = state;
      const missing = stepWaitsFor(wait.after, state, wait.count, wait.isOriginal);
      if (missing) {
        waiting = missing;
        return undefined;
      }
      if (wait.after === 'TTOU' || !wait.hook) return state;
      const fresh = state.workers.filter((worker) => !wait.isOriginal(worker)).map((worker) => worker.pid);
      const ready = await wait.hook(fresh);
      if (ready.length < fresh.length) {
        waiting = `new workers ${fresh.filter((pid) => !ready.includes(pid)).join(', ')} have not reported ready`;
        return undefined;
      }
      return state;
    },
    { timeoutMs: wait.timeoutSeconds * 1000, ...PROCESS_POLL },
  );
  if (settled) return settled;
  const workers = last?.workers.map((worker) => worker.pid).join(', ') || 'none';
  throw new ReloadError(
    wait.after === 'TTIN'
      ? `no new worker became ready within ${wait.timeoutSeconds}s after TTIN (${waiting}; workers ${workers}).`
      : `the oldest worker did not exit within ${wait.timeoutSeconds}s of TTOU (${waiting}; workers ${workers}).`,
    host.name,
  );
}
