/** Waiting for a remote state, in one place: every wait is bounded and says what it waited for. */
import { CancelledError } from './errors.js';

/**
 * How often a server's process state is read on a host while a reload waits for it. Each read
 * is one light SSH round trip; every turn saved is time the host spends waiting, but 50 hosts
 * polling at once also load the runner and the hosts, hence not shorter.
 */
export const PROCESS_POLL_MS = 150;

/**
 * The process polls' pace: every PROCESS_POLL_MS at first, then a tenth of the time waited so
 * far. A reload that is found up 10 % late at worst costs a 2 s boot 0.2 s, while a host slowed
 * by a busy fleet (50 hosts booting on a few cores) is not read fifty times more, each read
 * taking CPU from the very boots it waits for.
 */
export const PROCESS_POLL = { intervalMs: PROCESS_POLL_MS, stretch: 0.1 } as const;

/**
 * The pace of waits that usually end in moments: a master with no workers left exiting after
 * TERM, workers leaving after WINCH, a promotion after SIGCHLD. Every 30 ms at first, then a
 * quarter of the time waited so far: a wait that takes 50 ms is seen after 60 ms, not 150,
 * and one that drags on (graceful_timeout) is read a few dozen times at most.
 */
export const QUICK_POLL = { intervalMs: 30, stretch: 0.25 } as const;

export interface PollOptions {
  timeoutMs: number;
  intervalMs: number;
  /** When set, the interval grows to this fraction of the time waited so far (never below intervalMs). */
  stretch?: number;
  /** Injected in unit tests so they don't sleep. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /**
   * The run's cancellation: a forward wait (for a new generation, a gate, a lock) stops with a
   * CancelledError at its next turn. Waits that put things back take none, so they run to the end.
   */
  signal?: AbortSignal;
  /** What the wait is for, for the CancelledError's message. */
  what?: string;
}

/** Resolves after `ms`, or as soon as `signal` aborts (a cancelled run does not sit out a wait). */
export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Calls `check` until it returns a value other than undefined, or the time runs out; then
 * returns undefined. `check` may throw to stop early.
 */
export async function pollUntil<T>(check: () => Promise<T | undefined>, options: PollOptions): Promise<T | undefined> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? ((ms: number) => sleep(ms, options.signal));
  const started = now();
  const deadline = started + options.timeoutMs;
  for (;;) {
    throwIfCancelled(options.signal, options.what);
    const result = await check();
    if (result !== undefined) return result;
    if (now() + options.intervalMs > deadline) return undefined;
    const interval = Math.max(options.intervalMs, Math.round((now() - started) * (options.stretch ?? 0)));
    // A stretched interval that would pass the deadline is cut to it: the last turn still comes.
    await wait(Math.min(interval, deadline - now()));
  }
}

/** Throws a CancelledError when the run was cancelled: called where forward work may start. */
export function throwIfCancelled(signal: AbortSignal | undefined, what = 'go on', host?: string): void {
  if (signal?.aborted) throw new CancelledError(`cancelled: did not ${what}`, host);
}
