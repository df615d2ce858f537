/**
 * The traffic gate's verdict, a pure function of two `show stat` snapshots: the servers just
 * moved to the new release against the others (still on the old one) over the same window.
 */
import type { ServerStat } from './haproxy/stat-csv.js';

export interface TrafficThresholds {
  /** Fail when the new servers' error rate exceeds the old servers' by more than this (0..1). */
  max5xxRate: number;
  /** Fail when the new servers' response time exceeds this many times the old servers' (and a floor). */
  latencyFactor: number;
}

/** Fewer answered requests than this in the window say nothing either way: the gate passes and says so. */
export const MIN_SAMPLE = 5;
/** Response times under this (ms) never fail the gate: 3 × 2 ms is noise, not a regression. */
export const LATENCY_FLOOR_MS = 100;
/**
 * How much more often (0..1, over the old release's rate) HAProxy may have to retry an attempt
 * on the new release. Clients do not see a retried attempt, and a healthy server
 * causes some (measured here: uWSGI's `http-socket` closes every connection without saying so,
 * HAProxy reuses one now and then; 0.4-0.8 % of attempts, up to 4 % in a 3 s window). A release
 * that breaks connections on real requests is retried far more, and at the next batch no
 * server may be left to retry on: 10 points above the old release fails the gate.
 */
export const RETRIED_MARGIN = 0.1;
/**
 * Errors the clients saw on the new release that end the window early when its error rate
 * already fails: a release failing every request is rolled back after about this many failed
 * requests, not after the whole window. Ten leave no room for chance: a healthy release with
 * 1 % errors needs about a thousand requests to show ten, and by then its rate is its own.
 */
export const EARLY_ERRORS = 10;
/**
 * Fewer errors decide too when a release within the allowed rate would show that many so
 * rarely: below one chance in a million (5 failures in the first 5 requests at 2 % allowed, a
 * chance of 3e-9). What a canary at a small weight needs: it takes few requests a second.
 */
export const EARLY_CHANCE = 1e-6;
/** The allowed rate the chance is reckoned at is never taken below this (0 allowed: any error fails, but one may be chance). */
const CHANCE_RATE_FLOOR = 0.001;

/**
 * An upper bound (Chernoff) on the chance that `requests` at error rate `rate` show `errors`
 * or more: exp(-n · KL(errors/n ‖ rate)). 1 when that many errors is no more than expected.
 */
export function chanceOfErrors(errors: number, requests: number, rate: number): number {
  const p = Math.min(Math.max(rate, CHANCE_RATE_FLOOR), 1);
  if (requests === 0 || errors / requests <= p || p >= 1) return 1;
  const q = errors / requests;
  const term = (a: number, b: number) => (a === 0 ? 0 : a * Math.log(a / b));
  return Math.exp(-requests * (term(q, p) + term(1 - q, 1 - p)));
}

export interface TrafficSide {
  /** Attempts on the side's servers: answers, plus broken answers and failed connections. */
  requests: number;
  /** Failures the clients saw: 5xx answers, and broken answers or failed connections HAProxy did not retry. */
  errors: number;
  rate: number;
  /** Broken answers and failed connections HAProxy retried on another attempt (the client got an answer). */
  retried: number;
  retriedRate: number;
  /** HAProxy's rtime (ms), the highest among the side's servers; 0 when none answered. */
  rtime: number;
}

export interface TrafficVerdict {
  ok: boolean;
  /** The error rate fails on at least EARLY_ERRORS errors, or on errors a release within the allowed rate would show by chance less than EARLY_CHANCE: the window may end now. */
  decisive: boolean;
  /** One line for the log and the error. */
  summary: string;
  fresh: TrafficSide;
  baseline: TrafficSide;
}

/** One side's attempts, the errors its clients saw and the attempts HAProxy retried, over the window. */
function side(before: ServerStat[], after: ServerStat[], servers: ReadonlySet<string>): TrafficSide {
  let requests = 0;
  let errors = 0;
  let retried = 0;
  let rtime = 0;
  for (const now of after) {
    if (!servers.has(now.server)) continue;
    const then = before.find((row) => row.server === now.server);
    const delta = (pick: (row: ServerStat) => number) => Math.max(0, pick(now) - (then ? pick(then) : 0));
    const answered = delta((row) => row.responses);
    const broken = delta((row) => row.eresp) + delta((row) => row.econ);
    const retriedHere = Math.min(broken, delta((row) => row.wretr));
    requests += answered + broken;
    errors += delta((row) => row.hrsp5xx) + broken - retriedHere;
    retried += retriedHere;
    if (answered > 0) rtime = Math.max(rtime, now.rtime);
  }
  const share = (count: number) => (requests ? count / requests : 0);
  return { requests, errors, rate: share(errors), retried, retriedRate: share(retried), rtime };
}

/**
 * `fresh` = servers on the new release; the baseline is every other server of the backend
 * that answered in the window. Without a baseline the old rate counts as 0. Errors the clients
 * saw are held to `max5xxRate`; attempts HAProxy retried, to RETRIED_MARGIN.
 */
export function judgeTraffic(before: ServerStat[], after: ServerStat[], fresh: readonly string[], thresholds: TrafficThresholds): TrafficVerdict {
  const freshSet = new Set(fresh);
  const others = new Set(after.map((row) => row.server).filter((name) => !freshSet.has(name)));
  const newSide = side(before, after, freshSet);
  const oldSide = side(before, after, others);
  const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
  const retried = (value: TrafficSide) => (value.retried ? `, ${value.retried} retried by HAProxy` : '');
  const described = `new release ${newSide.errors}/${newSide.requests} errors (${percent(newSide.rate)})${retried(newSide)}, ${newSide.rtime} ms; old release ${oldSide.errors}/${oldSide.requests} (${percent(oldSide.rate)})${retried(oldSide)}, ${oldSide.rtime} ms`;
  if (newSide.requests < MIN_SAMPLE) {
    return { ok: true, decisive: false, summary: `too little traffic to judge (${newSide.requests} requests, fewer than ${MIN_SAMPLE}): ${described}`, fresh: newSide, baseline: oldSide };
  }
  const failures: string[] = [];
  const errorsFail = newSide.errors > 0 && newSide.rate > oldSide.rate + thresholds.max5xxRate;
  if (errorsFail) {
    failures.push(`error rate ${percent(newSide.rate)} is more than ${percent(thresholds.max5xxRate)} above the old release's ${percent(oldSide.rate)}`);
  }
  if (newSide.retriedRate > oldSide.retriedRate + RETRIED_MARGIN) {
    failures.push(`HAProxy had to retry ${percent(newSide.retriedRate)} of the attempts on it, more than ${percent(RETRIED_MARGIN)} above the old release's ${percent(oldSide.retriedRate)}`);
  }
  if (oldSide.requests > 0 && newSide.rtime > LATENCY_FLOOR_MS && newSide.rtime > thresholds.latencyFactor * Math.max(oldSide.rtime, 1)) {
    failures.push(`response time ${newSide.rtime} ms is more than ${thresholds.latencyFactor}× the old release's ${oldSide.rtime} ms`);
  }
  const decisive = errorsFail && (newSide.errors >= EARLY_ERRORS || chanceOfErrors(newSide.errors, newSide.requests, oldSide.rate + thresholds.max5xxRate) < EARLY_CHANCE);
  return { ok: failures.length === 0, decisive, summary: failures.length ? `${failures.join('; ')} (${described})` : described, fresh: newSide, baseline: oldSide };
}
