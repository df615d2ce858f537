/** Waiting for a remote state, in one place: every wait is bounded and says what it waited for. */

export interface PollOptions {
  timeoutMs: number;
  intervalMs: number;
  /** Injected in unit tests so they don't sleep. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `check` until it returns a value other than undefined, or the time runs out; then
 * returns undefined. `check` may throw to stop early.
 */
export async function pollUntil<T>(check: () => Promise<T | undefined>, options: PollOptions): Promise<T | undefined> {
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const deadline = now() + options.timeoutMs;
  for (;;) {
    const result = await check();
    if (result !== undefined) return result;
    if (now() + options.intervalMs > deadline) return undefined;
    await wait(options.intervalMs);
  }
}
