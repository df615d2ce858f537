import { LeftoverStateError } from '../../errors.js';
import { sleep } from '../../poll.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { describeProcesses } from '../gunicorn/generation.js';
import { parseSwitchLog } from '../gunicorn/leftover-state.js';
import { agesCommand, parseClock } from '../gunicorn/settle.js';
import type { Log, PointCurrent, Settled } from '../server-driver.js';
import type { UwsgiInstance } from './instance-check.js';
import { readStats } from './stats-reader.js';
import { recogniseUwsgiLeftover, type UwsgiLeftoverFacts } from './uwsgi-leftover.js';

export interface UwsgiSettleOptions {
  appDir: string;
  switchLog: string;
  timeoutSeconds: number;
  /** Finds and verifies the instance (the driver's inspect). */
  inspect: (host: RemoteHost) => Promise<UwsgiInstance>;
  /** Replaces every worker with one of what `current` names (the strategy's FIFO command, workers without an app first). */
  replaceAll: (host: RemoteHost, instance: UwsgiInstance, log: Log) => Promise<UwsgiInstance>;
}

/** Each step removes one anomaly; more than this means the host changes under us. */
const MAX_STEPS = 4;
/** Pause before reading again workers that are still loading. */
const LOADING_PAUSE_MS = 1000;

/**
 * Settles a uWSGI host one step at a time (uwsgi-leftover.ts decides, this acts), reading it
 * again after each step, until every worker accepts with its app loaded, on the release
 * `current` names when lazy-apps lets worker ages tell.
 */
export async function settleUwsgi(host: RemoteHost, options: UwsgiSettleOptions, pointCurrent: PointCurrent, log: Log): Promise<Settled> {
  let found: string | undefined;
  let repaired = false;
  const loadingUntil = Date.now() + options.timeoutSeconds * 1000;
  for (let step = 0; step < MAX_STEPS; ) {
    const { facts, instance } = await readLeftover(host, options);
    const state = recogniseUwsgiLeftover(facts);
    found ??= state.found;
    switch (state.kind) {
      case 'consistent':
        return { found, repaired, serves: state.serves };
      case 'loading':
        if (Date.now() > loadingUntil) throw new LeftoverStateError(`${state.found} after ${options.timeoutSeconds}s. Check uWSGI's log, then deploy again.`, host.name);
        await sleep(LOADING_PAUSE_MS);
        continue;
      case 'refuse':
        throw new LeftoverStateError(`${state.found}. Nothing was changed: check uWSGI by hand, then deploy again.`, host.name);
      case 'current-ahead':
        log(`left by an interrupted run: ${state.found}`);
        await pointCurrent(state.serves);
        log(`current → releases/${state.serves} (what serves)`);
        break;
      case 'reload':
        log(`left by an interrupted run: ${state.found}`);
        if (state.keep !== facts.current) {
          await pointCurrent(state.keep);
          log(`current → releases/${state.keep} (what served before)`);
        }
        log(`replacing every worker with one of ${state.keep}`);
        await options.replaceAll(host, instance, log);
        break;
    }
    repaired = true;
    step += 1;
  }
  throw new LeftoverStateError(`the host did not settle after ${MAX_STEPS} repairs (found: ${found}). Check uWSGI by hand, then deploy again.`, host.name);
}

/** The verified instance, its workers as the stats server and /proc see them, `current` and the switch log. */
async function readLeftover(host: RemoteHost, options: UwsgiSettleOptions): Promise<{ facts: UwsgiLeftoverFacts; instance: UwsgiInstance }> {
  const instance = await options.inspect(host);
  const [stats, aged] = await Promise.all([readStats(host, instance.python, instance.stats), host.exec('read the clock, current and the switch log', agesCommand(options.appDir, options.switchLog))]);
  if (!stats) throw new LeftoverStateError(`the uWSGI stats server ${instance.stats} stopped answering while the host was read.`, host.name);
  const clock = parseClock(aged.stdout);
  const pids = stats.workers.map((worker) => worker.pid).filter((pid) => pid > 0);
  const started = new Map((await describeProcesses(host, pids)).map((facts) => [facts.pid, clock.bootEpoch + Number(facts.startTime) / clock.ticks]));
  return {
    instance,
    facts: {
      current: clock.current,
      switches: parseSwitchLog(aged.stdout.split('\n').filter((line) => line.startsWith('switch ')).map((line) => line.slice(7)).join('\n')),
      lazyApps: instance.settings.lazyApps,
      // A worker gone between the two reads is left out: the next step reads again.
      workers: stats.workers.flatMap((worker) => {
        const at = started.get(worker.pid);
        return at === undefined ? [] : [{ id: worker.id, pid: worker.pid, accepting: worker.accepting, apps: worker.apps, startedAt: at }];
      }),
    },
  };
}
