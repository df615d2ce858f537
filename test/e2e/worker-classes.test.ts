/**
 * Gunicorn's worker classes beyond sync (gthread, gevent, and uvicorn's ASGI worker serving the
 * fixture's ASGI twin) deployed with usr2 and rolling on a real host under steady load through
 * HAProxy; sync is proven the same ways, on 3 hosts, by strategies.test.ts. Each class first
 * moves by usr2 on the heartbeat alone (the release it brings installs the ready hook), then by
 * rolling with the hook that master loaded, so both boot signals are proven for every class.
 * Then a WSGI app becomes an ASGI one in one usr2 deploy, hook installed. Zero failed requests,
 * the new release on every worker. How long each reload took is printed (measured, not asserted).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ASGI_WORKER_CLASSES, WORKER_CLASSES, type AppOptions, type WorkerClass } from '../support/app-fixture.js';
import type { ActionResult } from '../support/run-action.js';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, expectWorkersServe, hostsOutput, logOf, releaseSources, underLoad } from './support/deploy-fixture.js';
import { alivePids, masterFacts } from './support/gunicorn-facts.js';

/** Seconds each worker sleeps while importing the app: short, yet long enough that a boot is a wait. */
const BOOT_SECONDS = 1;

/** Times a line occurs in the action's log. */
function count(result: ActionResult, pattern: RegExp): number {
  return result.stdout.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

/** Seconds the host spent in each reload phase (reload, boot, retire), for the printed measurement. */
function reloadSeconds(result: ActionResult): string {
  const spans = hostsOutput(result)[0]?.timeline ?? [];
  return spans
    .filter((span) => ['reload', 'boot', 'retire'].includes(span.phase))
    .map((span) => `${span.phase} ${span.seconds.toFixed(2)}s`)
    .join(', ');
}

/** The ready marks of `workers`, as `pid mark` lines. */
async function marksOf(sb: Sandbox, workers: number[]): Promise<string> {
  return (await sb.exec(1, `cd ${sb.appDir}/run/ready && for p in ${workers.join(' ')}; do printf '%s ' "$p"; cat "$p"; done`)).stdout;
}

/** The Server header the host's workers answer with (uvicorn names itself; gunicorn's own workers say gunicorn). */
async function serverHeader(sb: Sandbox): Promise<string> {
  return (await sb.exec(1, `curl -s -m 5 -o /dev/null -D - http://127.0.0.1:8000/health/ready | tr -d '\\r' | sed -n 's/^[Ss]erver: //p'`)).stdout.trim();
}

/** sync: strategies.test.ts. */
const CLASSES = WORKER_CLASSES.filter((workerClass) => workerClass !== 'sync');

describe.each(CLASSES)('worker class %s on 1 host under load (an app that boots in 1 s)', (workerClass: WorkerClass) => {
  const sources = releaseSources();
  const app: Partial<AppOptions> = { workerClass, bootSeconds: BOOT_SECONDS };
  let sb: Sandbox;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 1, version: 'v1', app });
  });
  afterAll(async () => {
    await sb?.stop();
    await sources.removeAll();
  });

  it('usr2 v1 → v2 on the heartbeat alone: a new master whose workers all serve v2, nothing of v1 left', async () => {
    const before = await masterFacts(sb, 1);
    const { result, load } = await underLoad(sb, async () =>
      deployTo(sb, { source: await sources.source('v2', { ...app, readyHook: true }), release: 'v2', strategy: 'usr2' }),
    );
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v1' });
    expect(result.stdout).toMatch(/waiting for 2 booted workers/);
    await expectAllOn(sb, 'v2');
    const now = await masterFacts(sb, 1);
    expect(now).toMatchObject({ alive: true, cwd: `${sb.appDir}/releases/v2`, upgradePid: null });
    expect(now.pid).not.toBe(before.pid);
    expect(now.children).toHaveLength(2);
    expect(await alivePids(sb, 1, [before.pid, ...before.children]), 'old master and workers gone').toEqual([]);
    await expectWorkersServe(sb, 1, now.children, 'v2');
    console.info(`[${workerClass}] usr2: ${reloadSeconds(result)}; load ${load.requests} requests, max ${load.latency.max} ms`);
  });

  it('rolling v2 → v3 with the ready hook the v2 master loaded: each new worker reported 200 from v3 before an old one left', async () => {
    const before = await masterFacts(sb, 1);
    const { result, load } = await underLoad(sb, async () =>
      deployTo(sb, { source: await sources.source('v3', { ...app, readyHook: true }), release: 'v3', strategy: 'rolling' }),
    );
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v3', 'previous-release': 'v2' });
    expect(result.stdout).toMatch(/ready hook active: each new worker must report ready/);
    expect(count(result, /\] TTIN → \d+/)).toBe(2);
    expect(count(result, /\] TTOU → \d+/)).toBe(2);
    await expectAllOn(sb, 'v3');
    const now = await masterFacts(sb, 1);
    expect(now).toMatchObject({ pid: before.pid, alive: true, upgradePid: null });
    expect(now.children).toHaveLength(2);
    for (const pid of now.children) expect(before.children, `worker ${pid} is new`).not.toContain(pid);
    expect(await alivePids(sb, 1, before.children), 'old workers gone').toEqual([]);
    await expectWorkersServe(sb, 1, now.children, 'v3');
    const marks = await marksOf(sb, now.children);
    for (const pid of now.children) expect(marks).toMatch(new RegExp(`^${pid} 200\\tv3\\t200 OK$`, 'm'));
    console.info(`[${workerClass}] rolling: ${reloadSeconds(result)}; load ${load.requests} requests, max ${load.latency.max} ms`);
  });
});

describe('a WSGI app (sync workers) moved to uvicorn workers by one usr2 deploy, ready hook installed (1 host under load)', () => {
  const sources = releaseSources();
  const [uvicorn = 'uvicorn.workers.UvicornWorker'] = ASGI_WORKER_CLASSES;
  let sb: Sandbox;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 1, version: 'v1', app: { workerClass: 'sync', readyHook: true } });
  });
  afterAll(async () => {
    await sb?.stop();
    await sources.removeAll();
  });

  it('the new master\'s ASGI workers leave their marks after their lifespan startup: v2 deployed, served by uvicorn', async () => {
    expect(await serverHeader(sb)).toMatch(/^gunicorn/);
    const { result } = await underLoad(sb, async () =>
      deployTo(sb, { source: await sources.source('v2', { workerClass: uvicorn, readyHook: true }), release: 'v2', strategy: 'usr2', 'reload-timeout': '30' }),
    );
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2' });
    expect(result.stdout).toMatch(/waiting for 2 workers to report ready \(ready hook\)/);
    await expectAllOn(sb, 'v2');
    expect(await serverHeader(sb)).toBe('uvicorn');
    const now = await masterFacts(sb, 1);
    await expectWorkersServe(sb, 1, now.children, 'v2');
    const marks = await marksOf(sb, now.children);
    for (const pid of now.children) expect(marks).toMatch(new RegExp(`^${pid} 200\\tv2\\t200 OK$`, 'm'));
  });
});
