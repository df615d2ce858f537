import type { GunicornConfig } from './gunicorn-commands.js';

/** What a reload aims for, from the configuration of the release it loads. */
export interface ReloadPlan {
  /** Workers the reloaded generation must have. */
  workers: number;
  /**
   * Seconds to wait for a stopped generation (TERM) before anything harsher: gunicorn's own
   * graceful_timeout plus a margin for its arbiter loop, so no request it would let finish is cut.
   */
  stopSeconds: number;
  /** Why the count is what it is, for the log. */
  why: string;
}

/** gunicorn's default graceful_timeout, for a release whose config cannot be read. */
const DEFAULT_GRACEFUL_TIMEOUT = 30;
/** The arbiter checks its workers about once a second; a few seconds cover its lag and ours. */
const STOP_MARGIN_SECONDS = 5;

/**
 * The worker count and stop wait of a reload into `next` (the config of the release `current`
 * points to), for a master now running `running` workers. A config read from the master's own
 * arguments is authoritative. One read only from the release's gunicorn.conf.py (setproctitle
 * hid the arguments) may miss a `-w` on the command line, so it counts only when the release
 * the master runs (`now`) agrees with the master's real worker count (one short of it while a
 * worker recycled by max_requests is being replaced).
 */
export function reloadPlan(next: GunicornConfig | undefined, now: GunicornConfig | undefined, running: number): ReloadPlan {
  const stopSeconds = (next?.graceful_timeout ?? DEFAULT_GRACEFUL_TIMEOUT) + STOP_MARGIN_SECONDS;
  if (!next) return { workers: running, stopSeconds, why: `the new release's config could not be read: keeping the master's ${running} workers` };
  const agrees = now !== undefined && (now.workers === running || (now.max_requests > 0 && now.workers === running + 1));
  if (next.source === 'argv' || agrees) {
    return { workers: next.workers, stopSeconds, why: `the new release configures ${next.workers} workers (now ${running})` };
  }
  return {
    workers: running,
    stopSeconds,
    why: `keeping the master's ${running} workers: its arguments are hidden and its release's gunicorn.conf.py says ${now?.workers ?? 'nothing'} (a -w on the command line?)`,
  };
}
