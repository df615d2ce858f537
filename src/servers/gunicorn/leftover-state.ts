/**
 * What a run that died mid-reload (SIGKILL with its runner: no cancel handler, no post step)
 * left on a gunicorn host, and the one step that brings it closer to one consistent release.
 * Pure: the facts are read by settle.ts.
 *
 * Which release a worker serves: the one `current` named when the worker started, since a
 * worker imports the app from `current` when it boots (not with preload_app, see docs/gunicorn.md). The
 * switch log (release-commands.ts) says when `current` changed and from what to what; a
 * worker older than every logged switch serves the first switch's `from`.
 */

/** One line of the switch log. */
export interface Switch {
  /** Epoch seconds. */
  at: number;
  /** Release names; `from` is undefined for the first release ever linked. */
  from?: string;
  to: string;
}

/** A worker, with the epoch second it started. */
export interface WorkerAge {
  pid: number;
  startedAt: number;
}

export interface MasterGeneration {
  pid: number;
  workers: WorkerAge[];
  /**
   * Epoch second a run recorded sending WINCH to this master (gunicorn-commands.ts
   * winchCommand), if one did. WINCH sets gunicorn's worker count to 0: the workers left only
   * finish their requests and none is forked again until a HUP.
   */
  winchedAt?: number;
}

export interface LeftoverFacts {
  /** Release `current` names now. */
  current: string;
  switches: Switch[];
  /** The master the pidfile names (verified as this app's). */
  master: MasterGeneration;
  /** A master USR2 started beside it and nobody finished (verified child of `master`). */
  upgrade?: MasterGeneration;
}

/** What a host is found in, and the step that repairs it. */
export type LeftoverState =
  | { kind: 'consistent'; serves: string }
  /** Every worker serves `serves`, but `current` names another release: point it back. */
  | { kind: 'current-ahead'; serves: string; current: string }
  /** One master, workers of several releases (an interrupted rolling): current → keep, reload. */
  | { kind: 'mixed-generations'; serves: string[]; keep: string }
  /** A USR2 master beside the old one, and the old one still has workers: keep the old generation. */
  | { kind: 'two-masters'; keep: string; stop: number; stopServes: string[] }
  /**
   * The old master retired its workers (WINCH); only the new one serves, `keep`: commit it (TERM
   * the old) once it passes the readiness gate the dead run never finished, else HUP the old
   * master back to `back`, the release it served, and stop the new one.
   */
  | { kind: 'idle-old-master'; keep: string; back: string; idle: number; serving: number }
  /** A master whose workers WINCH retired, and no other generation serving: current → keep, HUP it, stop the new master `stop`. */
  | { kind: 'retired-master'; keep: string; master: number; stop?: number }
  /** Nothing here can be repaired without a person. */
  | { kind: 'refuse'; why: string };

/** The release a worker started at `startedAt` serves, by the switch log (sorted by time). */
export function releaseAt(startedAt: number, switches: Switch[], current: string): string {
  if (switches.length === 0) return current;
  let serves = switches[0]?.from ?? switches[0]?.to ?? current;
  for (const entry of switches) if (entry.at <= startedAt) serves = entry.to;
  return serves;
}

/** The distinct releases a generation's workers serve, oldest worker's first. */
export function releasesOf(generation: MasterGeneration, switches: Switch[], current: string): string[] {
  const byAge = [...generation.workers].sort((a, b) => a.startedAt - b.startedAt);
  return [...new Set(byAge.map((worker) => releaseAt(worker.startedAt, switches, current)))];
}

/**
 * Recognises the state. The rule for choosing: keep the generation that served before the
 * dead run (its release is known good), unless the new one is the only one with workers left
 * (then stopping it would leave the host serving nothing).
 */
export function recogniseLeftover(facts: LeftoverFacts): LeftoverState {
  const switches = [...facts.switches].sort((a, b) => a.at - b.at);
  const old = releasesOf(facts.master, switches, facts.current);
  const retired = isRetired(facts.master);
  // What served before the dead run: the old workers' release, else what the last switch replaced.
  const before = old[0] ?? switches.at(-1)?.from ?? facts.current;
  if (facts.upgrade) {
    const fresh = releasesOf(facts.upgrade, switches, facts.current);
    if (retired && fresh.length === 0) return { kind: 'retired-master', keep: before, master: facts.master.pid, stop: facts.upgrade.pid };
    // The generation that served before the dead run: the old master's oldest worker's release
    // (unless WINCH retired it: its workers only finish their requests).
    if (old[0] !== undefined && !retired) return { kind: 'two-masters', keep: old[0], stop: facts.upgrade.pid, stopServes: fresh };
    if (fresh.length === 1 && fresh[0] !== undefined) return { kind: 'idle-old-master', keep: fresh[0], back: before, idle: facts.master.pid, serving: facts.upgrade.pid };
    if (fresh.length > 1) return { kind: 'refuse', why: `the new master ${facts.upgrade.pid} serves ${fresh.join(' and ')} and the old master ${facts.master.pid} has no workers` };
    return { kind: 'refuse', why: `neither the old master ${facts.master.pid} nor the new master ${facts.upgrade.pid} of an unfinished USR2 has workers` };
  }
  if (retired) return { kind: 'retired-master', keep: before, master: facts.master.pid };
  if (old.length === 0) return { kind: 'refuse', why: `master ${facts.master.pid} has no workers` };
  if (old.length > 1) {
    const before = switches.at(-1)?.from;
    return { kind: 'mixed-generations', serves: old, keep: before && old.includes(before) ? before : (old[0] ?? facts.current) };
  }
  const serves = old[0] ?? facts.current;
  return serves === facts.current ? { kind: 'consistent', serves } : { kind: 'current-ahead', serves, current: facts.current };
}

/** Seconds a worker must start after the WINCH record to count as forked by a later HUP (the ages are read to 1/100 s). */
const AGE_MARGIN = 0.05;

/**
 * A master WINCH retired: a run recorded the WINCH and none of its workers started since (a
 * WINCHed master forks none until a HUP, which restores its worker count).
 */
function isRetired(master: MasterGeneration): boolean {
  const at = master.winchedAt;
  return at !== undefined && master.workers.every((worker) => worker.startedAt <= at + AGE_MARGIN);
}

/** One line for the log and errors: what the host was found in. */
export function describeLeftover(state: LeftoverState, current: string): string {
  switch (state.kind) {
    case 'consistent':
      return `consistent: every worker serves ${state.serves}`;
    case 'current-ahead':
      return `current names ${state.current}, but every worker serves ${state.serves} (a run died after switching, before reloading)`;
    case 'mixed-generations':
      return `workers of ${state.serves.join(' and ')} side by side under one master (an interrupted rolling reload); current names ${current}`;
    case 'two-masters':
      return `two masters: the old one serves ${state.keep}, the new master ${state.stop} of an unfinished USR2 ${state.stopServes.length ? `serves ${state.stopServes.join(' and ')}` : 'has no workers yet'}`;
    case 'idle-old-master':
      return `an idle old master ${state.idle} (its workers retired by WINCH) beside the new master ${state.serving}, which serves ${state.keep} (a USR2 never committed)`;
    case 'retired-master':
      return `master ${state.master} had its workers retired by WINCH (those left only finish their requests)${state.stop ? ` and the new master ${state.stop} of an unfinished USR2 has no workers` : ''}: nothing would serve`;
    case 'refuse':
      return state.why;
  }
}

/** Parses the switch log: `<epoch> <from|-> <to>` lines, where from and to are `releases/<name>`. */
export function parseSwitchLog(text: string): Switch[] {
  const switches: Switch[] = [];
  for (const line of text.split('\n')) {
    const [at = '', from = '', to = ''] = line.trim().split(/\s+/);
    if (!to || !Number.isFinite(Number(at))) continue;
    switches.push({ at: Number(at), from: from === '-' ? undefined : nameOf(from), to: nameOf(to) });
  }
  return switches;
}

function nameOf(target: string): string {
  return target.replace(/\/+$/, '').split('/').pop() ?? target;
}
