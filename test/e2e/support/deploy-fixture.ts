/**
 * Shared steps of the deploy end-to-end tests: a release source on the runner's side, the
 * action run against a sandbox, and what each host really has on disk and serves.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { writeRelease, type AppOptions } from '../../support/app-fixture.js';
import { runAction, sandboxInputs, type ActionResult } from '../../support/run-action.js';
import type { Sandbox } from '../../support/sandbox.js';
import { startLoad, type LoadReport } from '../../support/load.js';
import type { HostReport } from '../../../src/report/reporter.js';
import { masterFacts, versionsByWorker } from './gunicorn-facts.js';

export interface HostState {
  current: string;
  previous: string;
  revision: string;
  served: string | null;
  status: number;
}

/** Writes a release source directory (what a workflow checks out) and returns its path. */
export async function releaseSource(app: AppOptions): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `gd-source-${app.version}-`));
  await writeRelease(dir, app);
  return dir;
}

export async function removeSource(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Release sources made by one test file: `source(version)` writes one, `removeAll()` (in afterAll) removes them. */
export function releaseSources() {
  const dirs: string[] = [];
  return {
    source: async (version: string, app: Partial<AppOptions> = {}) => {
      const dir = await releaseSource({ ...app, version });
      dirs.push(dir);
      return dir;
    },
    removeAll: () => Promise.all(dirs.splice(0).map(removeSource)),
  };
}

/** Release sources v2, v3, … with the same app options, for tests that deploy one after another; removeAll() at the end. */
export function releaseSeries(app: Partial<AppOptions> = {}) {
  const dirs: string[] = [];
  let next = 2;
  return {
    /** The next release of the series; `changes` make this one different (e.g. neverReady). */
    next: async (changes: Partial<AppOptions> = {}): Promise<{ version: string; dir: string }> => {
      const version = `v${next++}`;
      const dir = await releaseSource({ ...app, ...changes, version });
      dirs.push(dir);
      return { version, dir };
    },
    removeAll: () => Promise.all(dirs.map(removeSource)),
  };
}

/** Runs the bundled action against every sandbox host with quick gate settings. */
export function deployTo(sb: Sandbox, inputs: Record<string, string>, env: Record<string, string> = {}): Promise<ActionResult> {
  return runAction(
    {
      ...sandboxInputs(sb),
      'health-interval': '0.5',
      'health-successes': '3',
      'health-timeout': '60',
      ...inputs,
    },
    { timeoutMs: 480_000, env },
  );
}

/** What `current`, `previous` and REVISION say on a host, and what it serves. */
export async function hostState(sb: Sandbox, host: number): Promise<HostState> {
  const dir = sb.appDir;
  const files = await sb.exec(host, `printf '%s|%s|%s' "$(readlink ${dir}/current)" "$(readlink ${dir}/previous)" "$(cat ${dir}/current/REVISION)"`);
  const [current = '', previous = '', revision = ''] = files.stdout.trim().split('|');
  const probe = await sb.probe(host);
  return { current, previous, revision, served: probe.version, status: probe.status };
}

/** Every host: `current` → releases/<release>, REVISION names it, and it serves it. */
export async function expectAllOn(sb: Sandbox, release: string): Promise<void> {
  for (const host of sb.hosts) {
    const state = await hostState(sb, host.index);
    expect(state, `host ${host.name}`).toMatchObject({ current: `releases/${release}`, revision: release, served: release, status: 200 });
  }
}

/** Every one of `workers` on `host` answers with `version`. */
export async function expectWorkersServe(sb: Sandbox, host: number, workers: number[], version: string): Promise<void> {
  const served = await versionsByWorker(sb, host, workers);
  for (const pid of workers) expect(served[pid], `worker ${pid} on h${host} (saw ${JSON.stringify(served)})`).toEqual([version]);
}

/** One host of the action's `hosts` output. */
export type HostOutput = HostReport;

export function hostsOutput(result: ActionResult): HostOutput[] {
  return JSON.parse(result.outputs.hosts ?? '[]') as HostOutput[];
}

/** Explains a failed expectation with the action's own log. */
export function logOf(result: ActionResult): string {
  return `exit ${result.code}\n${result.stdout.slice(-6000)}\n${result.stderr.slice(-3000)}`;
}

/**
 * Runs `body` under steady load (100 req/s) through the sandbox's HAProxy and expects zero
 * failed requests; returns the body's result and the load report.
 */
export async function underLoad<T>(sb: Sandbox, body: () => Promise<T>): Promise<{ result: T; load: LoadReport }> {
  const run = startLoad({ url: sb.lbUrl, rate: 100, connections: 10, maxSeconds: 300 });
  let result: T;
  let load: LoadReport | undefined;
  try {
    result = await body();
  } finally {
    load = await run.stop();
    expect(load.requests, 'load ran').toBeGreaterThan(50);
    expect(load.failed, `failed requests: ${JSON.stringify(load.statuses)} errors ${load.errors} timeouts ${load.timeouts}`).toBe(0);
  }
  return { result, load };
}

/**
 * One consistent gunicorn host: one settled master (no `.2`), every worker and the readiness
 * URL on the release `current` names, no deploy lock. Returns that release.
 */
export async function expectOneRelease(sb: Sandbox, host: number): Promise<string> {
  const state = await hostState(sb, host);
  const release = state.current.replace('releases/', '');
  expect(state, `h${host}`).toMatchObject({ revision: release, served: release, status: 200 });
  const master = await masterFacts(sb, host);
  // (A master that rolled or HUPed its workers still runs in the release it started in: its workers tell what it serves.)
  expect(master, `h${host}: one settled master`).toMatchObject({ alive: true, upgradePid: null });
  const masters = await sb.exec(host, `pgrep -c -f '^gunicorn: master' || true`);
  expect(masters.stdout.trim(), `h${host}: gunicorn masters`).toBe('1');
  const served = await versionsByWorker(sb, host, master.children);
  for (const pid of master.children) expect(served[pid], `h${host} worker ${pid}`).toEqual([release]);
  expect((await sb.exec(host, `test -e ${sb.appDir}/.deploy-lock && echo locked`)).stdout, `h${host}: no lock`).toBe('');
  return release;
}
