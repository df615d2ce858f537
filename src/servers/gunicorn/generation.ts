import { ReloadError } from '../../errors.js';
import { PROCESS_POLL, QUICK_POLL, pollUntil } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log } from '../server-driver.js';
import { childrenCommand, describePidsCommand, parseChildren, parseDescribedPids, type ProcessFacts } from './process-facts.js';
import { signalCommand } from './gunicorn-commands.js';

/** A gunicorn process we verified, named by pid and start time so a reused pid never matches. */
export interface ProcessRef {
  pid: number;
  startTime: string;
}

/** The live process (same start time) with its children, or undefined if it is gone. */
export async function readProcess(host: RemoteHost, process: ProcessRef): Promise<ProcessFacts | undefined> {
  const result = await host.exec(`read gunicorn pid ${process.pid}`, childrenCommand(process.pid, process.startTime));
  return parseChildren(result.stdout);
}

/** The facts of those of `pids` that are still alive (each with its start time). */
export async function describeProcesses(host: RemoteHost, pids: number[]): Promise<ProcessFacts[]> {
  if (pids.length === 0) return [];
  return parseDescribedPids((await host.exec('read gunicorn workers', describePidsCommand(pids))).stdout, pids);
}

/** Same process: same pid and same start time (a reused pid has another). */
export function sameProcess(a: ProcessRef, b: ProcessRef): boolean {
  return a.pid === b.pid && a.startTime === b.startTime;
}

/** Sends a signal to a verified gunicorn process (the start time is re-checked in the same remote shell). */
export async function signal(host: RemoteHost, process: ProcessRef, name: string, log: Log): Promise<void> {
  await host.exec(`send ${name} to gunicorn pid ${process.pid}`, signalCommand(process.pid, process.startTime, name));
  log(`${name} → ${process.pid}`);
}

export interface GenerationWait {
  /** Workers that must all be gone from the master. */
  old: number[];
  /** How many booted workers make the new generation complete. */
  count: number;
  /** Children that are not workers (a USR2 child master). */
  notWorkers?: number[];
  timeoutSeconds: number;
  /** Extra readiness test of a booted worker (the ready-hook mark), if any. */
  isReady?: (workers: number[]) => Promise<number[]>;
  /** What it means when the master exits meanwhile; default: masterHalted (the host is down). */
  exitMessage?: string;
  /** The run's cancellation, for forward waits only. */
  signal?: AbortSignal;
}

/**
 * Waits until `master` has `count` workers that have all booted and none of `old` remains.
 * Throws when the master dies (gunicorn halts when a worker cannot boot) or time runs out.
 */
export async function waitForGeneration(host: RemoteHost, master: ProcessRef, wait: GenerationWait): Promise<ProcessFacts> {
  const old = new Set(wait.old);
  const skip = new Set(wait.notWorkers ?? []);
  let last: ProcessFacts | undefined;
  let unmarked: number[] = [];
  const settled = await pollUntil(
    async () => {
      const facts = await readProcess(host, master);
      if (!facts) throw new ReloadError(wait.exitMessage ?? masterHalted(master.pid), host.name);
      last = workersOnly(facts, skip);
      const fresh = last.children.filter((worker) => !old.has(worker));
      if (fresh.length !== last.children.length || fresh.length < wait.count) return undefined;
      const booted = last.booted.filter((worker) => !old.has(worker));
      if (booted.length < fresh.length) return undefined;
      const ready = wait.isReady ? await wait.isReady(booted) : booted;
      unmarked = booted.filter((worker) => !ready.includes(worker));
      return ready.length >= fresh.length ? last : undefined;
    },
    { timeoutMs: wait.timeoutSeconds * 1000, ...PROCESS_POLL, signal: wait.signal, what: `wait for the workers of gunicorn master ${master.pid}` },
  );
  if (!settled) {
    const stale = last?.children.filter((worker) => old.has(worker)) ?? [];
    // Booted workers the ready check did not take left no mark: the hook, not the boot, is what is missing.
    const marks = unmarked.length
      ? `; no ready mark from ${unmarked.join(', ')}: the workers before had marks of the ready hook, so new ones must leave one too ` +
        "(is graceful_deploy_hook's post_worker_init still in the new release's gunicorn.conf.py?)"
      : '';
    throw new ReloadError(
      `gunicorn master ${master.pid} did not reach ${wait.count} ${wait.isReady ? 'ready' : 'booted'} new workers within ${wait.timeoutSeconds}s ` +
        `(workers ${last?.children.join(', ') || 'none'}, booted ${last?.booted.join(', ') || 'none'}, old still alive: ${stale.join(', ') || 'none'}${marks}).`,
      host.name,
    );
  }
  return settled;
}

/** Waits until `master` has no workers left (after WINCH). */
export async function waitForNoWorkers(host: RemoteHost, master: ProcessRef, notWorkers: number[], timeoutSeconds: number): Promise<void> {
  const skip = new Set(notWorkers);
  let left: number[] = [];
  const done = await pollUntil(
    async () => {
      const facts = await readProcess(host, master);
      if (!facts) throw new ReloadError(`gunicorn master ${master.pid} exited while its workers were retired.`, host.name);
      left = workersOnly(facts, skip).children;
      return left.length === 0 ? true : undefined;
    },
    { timeoutMs: timeoutSeconds * 1000, ...QUICK_POLL },
  );
  if (!done) {
    throw new ReloadError(`old workers ${left.join(', ')} of master ${master.pid} were still alive ${timeoutSeconds}s after WINCH, beyond graceful_timeout (a request longer than that, or is gunicorn not daemonized? WINCH is ignored then).`, host.name);
  }
}

/** Waits until a process is gone; returns false on timeout. */
export async function waitUntilGone(host: RemoteHost, process: ProcessRef, timeoutSeconds: number): Promise<boolean> {
  const gone = await pollUntil(async () => ((await readProcess(host, process)) ? undefined : true), {
    timeoutMs: timeoutSeconds * 1000,
    ...QUICK_POLL,
  });
  return gone === true;
}

function workersOnly(facts: ProcessFacts, skip: Set<number>): ProcessFacts {
  return { ...facts, children: facts.children.filter((pid) => !skip.has(pid)), booted: facts.booted.filter((pid) => !skip.has(pid)) };
}

/** What to say when a master died under a reload: gunicorn halts when a worker cannot boot. */
export function masterHalted(pid: number): string {
  return (
    `gunicorn master ${pid} exited: a new worker could not boot, and gunicorn halts then (see its error log). ` +
    'This host serves nothing until gunicorn is started again. Strategy usr2 survives such a release: the old master never stops.'
  );
}
