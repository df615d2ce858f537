import { ReloadError } from '../../errors.js';
import { PROCESS_POLL, pollUntil } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log } from '../server-driver.js';
import type { UwsgiInstance } from './instance-check.js';
import { readStats, type InstanceStats, type WorkerStats } from './stats-reader.js';
import { childrenCommand, parseChildren } from '../gunicorn/process-facts.js';

/** Where a reload stands, judged from one stats reading. */
export interface Judgement {
  verdict: 'done' | 'waiting' | 'broken';
  /** Workers forked since the reload began (pid not among the replaced ones). */
  fresh: WorkerStats[];
  /** Fresh workers that serve: accepting, with an app loaded. */
  serving: WorkerStats[];
  reason?: string;
}

/**
 * A worker counts as replaced only when its pid changed; as serving only when it also accepts
 * and has an app. A fresh worker that accepts without an app is uWSGI's "no app loaded" (full
 * dynamic mode): it answers every request with an error, so the reload is broken at once.
 */
export function judge(stats: InstanceStats, replaced: ReadonlySet<number>, count: number): Judgement {
  const fresh = stats.workers.filter((worker) => worker.pid > 0 && !replaced.has(worker.pid));
  const serving = fresh.filter((worker) => worker.accepting && worker.apps > 0);
  const empty = fresh.find((worker) => worker.accepting && worker.apps === 0);
  if (empty) {
    return {
      verdict: 'broken',
      fresh,
      serving,
      reason: `new worker ${empty.id} (pid ${empty.pid}) accepts requests with no app loaded: the release fails to load inside uWSGI (see its log for the traceback)`,
    };
  }
  const done = stats.workers.length >= count && serving.length === stats.workers.length;
  return { verdict: done ? 'done' : 'waiting', fresh, serving };
}

export interface FollowOptions {
  /** Pids that must all be replaced (every worker alive when the reload began). */
  replaced: number[];
  timeoutSeconds: number;
  /** Called when nothing moved for a while (a chain request uWSGI ignored while another chain ran). */
  nudge?: () => Promise<void>;
  what: string;
  /** The run's cancellation, for forward reloads only: the wait stops at its next turn. */
  signal?: AbortSignal;
}

const NUDGE_AFTER_MS = 3000;

/** Follows a reload through the stats server until every worker is a new one serving its app. */
export async function followWorkers(host: RemoteHost, instance: UwsgiInstance, options: FollowOptions, log: Log): Promise<WorkerStats[]> {
  const replaced = new Set(options.replaced);
  const count = options.replaced.length;
  const announced = new Set<number>();
  let last: Judgement | undefined;
  let lastMove = Date.now();
  let silentSince: number | undefined;
  const finished = await pollUntil(
    async () => {
      const stats = await readStats(host, instance.python, instance.stats);
      if (!stats) {
        silentSince ??= Date.now();
        // A master in a graceful reload closes the stats server while it re-executes: only a dead master is final.
        if (!parseChildren((await host.exec('check the uWSGI master', childrenCommand(instance.pid, instance.startTime))).stdout)) {
          throw new ReloadError(`uWSGI master ${instance.pid} exited during the ${options.what} (see its log; with need-app a worker without an app takes the whole instance down).`, host.name);
        }
        return undefined;
      }
      silentSince = undefined;
      if (stats.pid !== instance.pid) throw new ReloadError(`the stats server ${instance.stats} now belongs to master ${stats.pid}, not ${instance.pid}.`, host.name);
      last = judge(stats, replaced, count);
      for (const worker of last.serving) {
        if (announced.has(worker.pid)) continue;
        announced.add(worker.pid);
        lastMove = Date.now();
        log(`worker ${worker.id} (pid ${worker.pid}) serves with its app loaded (${announced.size}/${count})`);
      }
      if (last.verdict === 'broken') throw new ReloadError(`${options.what} stopped: ${last.reason}.`, host.name);
      if (last.verdict === 'done') return last.serving;
      const loading = last.fresh.some((worker) => !worker.accepting);
      if (options.nudge && !loading && Date.now() - lastMove > NUDGE_AFTER_MS) {
        lastMove = Date.now();
        await options.nudge();
      }
      return undefined;
    },
    { timeoutMs: options.timeoutSeconds * 1000, ...PROCESS_POLL, signal: options.signal, what: `wait for the ${options.what}` },
  );
  if (!finished) {
    const waiting = last ? last.fresh.filter((worker) => !worker.accepting).map((worker) => `${worker.id} (pid ${worker.pid})`) : [];
    throw new ReloadError(
      `the ${options.what} did not finish within ${options.timeoutSeconds}s: ${announced.size}/${count} new workers serve their app` +
        `${waiting.length ? `; still loading: worker ${waiting.join(', ')}` : ''}${silentSince ? '; the stats server does not answer' : ''}.`,
      host.name,
    );
  }
  return finished;
}
