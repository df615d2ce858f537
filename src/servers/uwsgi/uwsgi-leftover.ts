/**
 * What a run that died mid-reload left on a uWSGI host, and the step that brings it to one
 * consistent release (uwsgi-settle.ts reads the facts and acts). Pure.
 *
 * Which release a worker serves: with lazy-apps each worker imports the app when it is forked,
 * through `current` (the import path must go through the link, see README), so the switch log
 * and its start time tell (leftover-state.ts releaseAt, as for gunicorn). Without lazy-apps every
 * worker is a copy of the master's loaded code, which worker ages date only one way: workers
 * all forked before the last switch serve the release before it; otherwise only whether each
 * worker has its app is known.
 */
import { releaseAt, type Switch } from '../gunicorn/leftover-state.js';

/** One worker: the stats server's view, with the epoch second it was forked. */
export interface UwsgiWorkerFacts {
  id: number;
  pid: number;
  accepting: boolean;
  /** Apps loaded: 0 is uWSGI's "no app loaded" (every request gets an error). */
  apps: number;
  startedAt: number;
}

export interface UwsgiLeftoverFacts {
  /** Release `current` names now. */
  current: string;
  switches: Switch[];
  lazyApps: boolean;
  workers: UwsgiWorkerFacts[];
}

export type UwsgiLeftoverState =
  /** Every worker accepts with its app loaded; `serves` when the release can be told (lazy-apps). */
  | { kind: 'consistent'; serves?: string; found: string }
  /** Workers still loading (not accepting yet): read again. */
  | { kind: 'loading'; found: string }
  /** Every worker serves `serves`, but `current` names another release: point it back. */
  | { kind: 'current-ahead'; serves: string; current: string; found: string }
  /** Workers of several releases, or workers without their app: current → keep, replace every worker. */
  | { kind: 'reload'; keep: string; found: string }
  | { kind: 'refuse'; found: string };

export function recogniseUwsgiLeftover(facts: UwsgiLeftoverFacts): UwsgiLeftoverState {
  const switches = [...facts.switches].sort((a, b) => a.at - b.at);
  const workers = facts.workers.filter((worker) => worker.pid > 0);
  if (workers.length === 0) return { kind: 'refuse', found: 'the uWSGI master has no worker' };
  const last = switches.at(-1);
  // What served before the last switch, when that switch is what `current` still names.
  const before = last?.from !== undefined && last.to === facts.current ? last.from : facts.current;
  const serves = (worker: UwsgiWorkerFacts) => releaseAt(worker.startedAt, switches, facts.current);
  const empty = workers.filter((worker) => worker.accepting && worker.apps === 0);
  if (empty.length) {
    // With lazy-apps, an empty worker forked after the last switch is that release failing to load.
    const failing = facts.lazyApps ? [...new Set(empty.map(serves))] : [facts.current];
    const keep = failing.includes(facts.current) ? before : facts.current;
    return { kind: 'reload', keep, found: `worker ${empty.map((worker) => `${worker.id} (pid ${worker.pid})`).join(', ')} accepts requests with no app loaded (every request gets an error)` };
  }
  const loading = workers.filter((worker) => !worker.accepting);
  if (loading.length) return { kind: 'loading', found: `worker ${loading.map((worker) => worker.id).join(', ')} still loading` };
  if (!facts.lazyApps) {
    // Workers all forked before the last switch are copies of code the master loaded through
    // `current` before it (a run killed between switch and reload leaves this). A worker forked
    // after it may serve either (a respawn copies the same old code): not told.
    if (last && workers.every((worker) => worker.startedAt < last.at)) {
      const served = serves(workers.reduce((oldest, worker) => (worker.startedAt < oldest.startedAt ? worker : oldest)));
      if (served !== facts.current) {
        return { kind: 'current-ahead', serves: served, current: facts.current, found: `current names ${facts.current}, but every worker was forked before the switch to it, from ${served}'s code (a run died after switching, before reloading)` };
      }
      return { kind: 'consistent', serves: served, found: `consistent: every worker serves ${served} with its app loaded` };
    }
    return { kind: 'consistent', found: 'every worker accepts with its app loaded (without lazy-apps, worker ages do not tell the release)' };
  }
  const byAge = [...workers].sort((a, b) => a.startedAt - b.startedAt);
  const releases = [...new Set(byAge.map(serves))];
  const [oldest] = releases;
  if (oldest === undefined) return { kind: 'refuse', found: 'the uWSGI master has no worker' };
  if (releases.length > 1) {
    const keep = releases.includes(before) ? before : oldest;
    return { kind: 'reload', keep, found: `workers of ${releases.join(' and ')} side by side (an interrupted chain reload); current names ${facts.current}` };
  }
  if (oldest !== facts.current) return { kind: 'current-ahead', serves: oldest, current: facts.current, found: `current names ${facts.current}, but every worker serves ${oldest} (a run died after switching, before reloading)` };
  return { kind: 'consistent', serves: oldest, found: `consistent: every worker serves ${oldest} with its app loaded` };
}
