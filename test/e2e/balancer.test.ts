/**
 * Issue 11 (HAProxy half): the action drives a real HAProxy 2.6 on its own namespaced host
 * (own sshd, admin socket at /run/haproxy/admin.sock reached over SSH) while steady load goes
 * through it: hup behind drain loses no request, a release that passes /health/ready but fails
 * real requests is caught by the traffic gate and rolled back, failed and cancelled runs leave
 * no server drained, and uWSGI reload (good and no-app releases) loses no request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postStepEnv, type ActionResult } from '../support/run-action.js';
import { startLoad, type LoadReport } from '../support/load.js';
import { startServingSandbox, type AppOptions, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostState, hostsOutput, logOf, releaseSource, removeSource, underLoad } from './support/deploy-fixture.js';

/** The balancer inputs of an LB-host sandbox, with a short traffic window. */
function lbInputs(sb: Sandbox): Record<string, string> {
  const lb = sb.lb;
  if (!lb) throw new Error('sandbox without an LB host');
  return { lb: 'haproxy', 'lb-host': lb.ip, 'lb-backend': lb.backend, 'lb-drain-timeout': '10', 'lb-traffic-gate-window': '3' };
}

/** No server drained or in maintenance: every one back in rotation, UP, and at its configured weight. */
async function expectAllBack(sb: Sandbox, weight = 1): Promise<void> {
  await sb.waitForLb({ timeoutMs: 30_000 });
  expect(Object.values(await sb.lbStatus())).toEqual(sb.hosts.map(() => 'UP'));
  expect(Object.values(await sb.lbWeights())).toEqual(sb.hosts.map(() => weight));
}

const expectNoneDrained = (sb: Sandbox) => expectAllBack(sb);

function harness(server: 'gunicorn' | 'uwsgi') {
  const ctx = {
    sb: undefined as unknown as Sandbox,
    sources: [] as string[],
    async source(version: string, app: Partial<AppOptions> = {}): Promise<string> {
      const dir = await releaseSource({ version, ...(server === 'uwsgi' ? { appDir: ctx.sb.appDir } : {}), ...app });
      ctx.sources.push(dir);
      return dir;
    },
    run(inputs: Record<string, string>, opts: { cancelWhen?: RegExp; signal?: 'SIGKILL'; env?: Record<string, string> } = {}): Promise<ActionResult> {
      const all = { server, 'health-timeout': '20', ...lbInputs(ctx.sb), ...inputs };
      if (!opts.cancelWhen && !opts.env) return deployTo(ctx.sb, all);
      const cancelWhen = opts.cancelWhen && { output: opts.cancelWhen, signal: opts.signal };
      return import('../support/run-action.js').then(({ runAction, sandboxInputs }) =>
        runAction({ ...sandboxInputs(ctx.sb), 'health-interval': '0.5', ...all }, { timeoutMs: 300_000, cancelWhen, env: opts.env }),
      );
    },
    async stop(): Promise<void> {
      await ctx.sb?.stop();
      await Promise.all(ctx.sources.map(removeSource));
    },
  };
  return ctx;
}

describe('gunicorn behind HAProxy on its own host: drain and traffic gate under load', () => {
  const t = harness('gunicorn');
  // Weight 100 on every server (shares as with HAProxy's default 1): room for lb-canary-weight.
  const WEIGHT = 100;
  const expectNoneDrained = (sb: Sandbox) => expectAllBack(sb, WEIGHT);
  beforeAll(async () => {
    t.sb = await startServingSandbox({ hosts: 3, version: 'v1', lbHost: true, serverWeight: WEIGHT });
  }, 120_000);
  afterAll(() => t.stop());

  it('hup with a 4 s boot behind drain: 0 failed requests, every server back UP, the summary says how long each was drained', async () => {
    const { result, load } = await underLoad(t.sb, async () => t.run({ source: await t.source('v2', { bootSeconds: 4 }), release: 'v2', strategy: 'hup' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs.status).toBe('deployed');
    await expectAllOn(t.sb, 'v2');
    await expectNoneDrained(t.sb);
    const hosts = hostsOutput(result);
    for (const host of hosts) {
      expect(host.balancer?.server).toMatch(/^h\d$/);
      expect(host.balancer?.drainedSeconds, JSON.stringify(host)).toBeGreaterThan(3);
      expect(host.balancer?.errorsDuringReload).toBe(0);
      expect(host.balancer?.traffic).toMatch(/^passed/);
    }
    expect(result.stdout).toMatch(/h1 drained \(\d+ sessions, \d+ queued\)/);
    expect(result.summary).toContain('Load balancer');
    console.log(`hup + drain (3 hosts, 4 s boot): ${load.requests} requests, ${load.failed} failed, max latency ${load.latency.max} ms, p99 ${load.latency.p99} ms`);
    // Without drain every request that reaches a host during its HUP waits out the 4 s boot (bench: max ≈ 3.7 s).
    expect(load.latency.max, 'no request waits for a boot').toBeLessThan(1000);
  });

  it('a release whose /health/ready passes but whose / answers 500: caught by the traffic gate on the first host and rolled back', async () => {
    const run = startLoad({ url: t.sb.lbUrl, rate: 100, connections: 10, maxSeconds: 300 });
    let result: ActionResult;
    let load: LoadReport;
    try {
      result = await t.run({ source: await t.source('v3', { failRequests: true }), release: 'v3', strategy: 'hup' });
    } finally {
      load = await run.stop();
    }
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(result.stdout).toMatch(/traffic gate FAILED: error rate 100\.0% is more than 2\.0% above the old release's 0\.0%/);
    await expectAllOn(t.sb, 'v2');
    await expectNoneDrained(t.sb);
    // Only the bad release failed requests, and only during the gate's window on one host.
    expect(load.statuses['500'] ?? 0, JSON.stringify(load)).toBeGreaterThan(0);
    expect(load.failed).toBe(load.statuses['500']);
    expect(load.versions.v3).toBe(load.statuses['500']);
    console.log(`500 release: ${load.requests} requests, ${load.failed} answered 500 by v3 before the gate caught it`);
  });

  it('lb-canary-weight 10%: a 500-ing canary is watched at a tenth of its weight, rolled back, and put back at full weight; a good release ends at full weight', async () => {
    const run = startLoad({ url: t.sb.lbUrl, rate: 100, connections: 10, maxSeconds: 300 });
    let result: ActionResult;
    let load: LoadReport;
    try {
      result = await t.run({ source: await t.source('v3w', { failRequests: true }), release: 'v3w', strategy: 'hup', 'lb-canary-weight': '10%' });
    } finally {
      load = await run.stop();
    }
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(result.stdout).toMatch(/canary app\/h1 will take weight 10 of its 100 \(10%\) while the traffic gate watches it/);
    expect(result.stdout).toMatch(/h1 set to weight 10 \(canary\)/);
    expect(result.stdout).toMatch(/traffic gate FAILED: error rate 100\.0%/);
    expect(result.stdout).toMatch(/h1 back to its full weight \(100\)/);
    await expectAllOn(t.sb, 'v2');
    await expectNoneDrained(t.sb);
    // Only the canary failed requests, at its lowered share.
    expect(load.failed).toBe(load.statuses['500'] ?? 0);
    expect(load.versions.v3w ?? 0).toBe(load.failed);
    console.log(`500 canary at 10% weight: ${load.requests} requests, ${load.failed} answered 500 by v3w before the gate caught it`);

    const good = await underLoad(t.sb, async () => t.run({ source: await t.source('v3x'), release: 'v3x', strategy: 'hup', 'lb-canary-weight': '10%' }));
    expect(good.result.outputs.status, logOf(good.result)).toBe('deployed');
    expect(good.result.stdout).toMatch(/traffic gate passed: .*h1 back to its full weight \(100\)/s);
    await expectAllOn(t.sb, 'v3x');
    await expectNoneDrained(t.sb);
  });

  it('a failed run (never ready) leaves no server drained and loses no request', async () => {
    const { result } = await underLoad(t.sb, async () =>
      t.run({ source: await t.source('v4', { neverReady: true }), release: 'v4', strategy: 'hup', 'health-timeout': '5' }),
    );
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    await expectAllOn(t.sb, 'v3x');
    await expectNoneDrained(t.sb);
  });

  it('a run cancelled while a host is drained: the host is put back and no server is left drained', async () => {
    const previous = (await hostState(t.sb, 1)).current.replace('releases/', '');
    const result = await t.run({ source: await t.source('v5', { bootSeconds: 1 }), release: 'v5', strategy: 'hup' }, { cancelWhen: /HUP → / });
    expect(result.outputs.status ?? '(killed)', logOf(result)).toBe('cancelled');
    expect(result.stdout).toMatch(/h1 drained/);
    expect(result.stdout).toMatch(/h1 set back to ready|h1 ready and UP/);
    await expectNoneDrained(t.sb);
    await expectAllOn(t.sb, previous);
  });

  it('a run cancelled during a rollback behind drain: every host back on the previous release, none drained', async () => {
    const previous = (await hostState(t.sb, 1)).current.replace('releases/', '');
    const load = startLoad({ url: t.sb.lbUrl, rate: 100, connections: 10, maxSeconds: 300 });
    let result: ActionResult;
    try {
      // The traffic gate fails h1; the runner's SIGINT comes as the rollback drains h1 again.
      result = await t.run({ source: await t.source('v5c', { failRequests: true }), release: 'v5c', strategy: 'hup' }, { cancelWhen: /traffic gate FAILED/ });
    } finally {
      await load.stop();
    }
    expect(result.stdout, logOf(result)).toMatch(/SIGINT received/);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    await expectAllOn(t.sb, previous);
    await expectNoneDrained(t.sb);
  });

  it('a run killed outright (SIGKILL) while a canary is drained at a lowered weight: the post step sets the server ready at full weight', async () => {
    const previous = (await hostState(t.sb, 1)).current.replace('releases/', '');
    const inputs = { source: await t.source('v5d', { bootSeconds: 2 }), release: 'v5d', strategy: 'hup', 'lb-canary-weight': '10%' };
    const killed = await t.run(inputs, { cancelWhen: /h1 drained/, signal: 'SIGKILL' });
    expect(killed.code, logOf(killed)).toBe(137);
    expect(JSON.parse(killed.state.lbHeld ?? '{}')).toEqual({ backend: 'app', drained: ['h1'], lowered: ['h1'] });
    expect((await t.sb.lbStatus()).h1).toMatch(/DRAIN/);
    expect((await t.sb.lbWeights()).h1).toBe(10);
    const post = await t.run(inputs, { env: postStepEnv(killed.state) });
    expect(post.code, logOf(post)).toBe(0);
    expect(post.stdout).toMatch(/h1 set back to ready \(this run had drained it\)/);
    expect(post.stdout).toMatch(/h1 set back to its full weight \(this run had lowered it for the canary\)/);
    await expectNoneDrained(t.sb);
    await expectAllOn(t.sb, previous);
  });

  it('bad balancer inputs and impossible plans are refused before any change', async () => {
    const source = await t.source('v6');
    const noHost = await t.run({ source, release: 'v6', 'lb-host': '' });
    expect(noHost.stdout).toMatch(/Invalid input 'lb-host'/);
    const noBackend = await t.run({ source, release: 'v6', 'lb-backend': '' });
    expect(noBackend.stdout).toMatch(/Invalid input 'lb-backend'/);
    const wrongBackend = await t.run({ source, release: 'v6', strategy: 'hup', 'lb-backend': 'nope' });
    expect(wrongBackend.stdout, logOf(wrongBackend)).toMatch(/HAProxy has no backend 'nope'/);
    const unknownServer = await t.run({ source, release: 'v6', strategy: 'hup', 'lb-servers': t.sb.hosts.map((host) => `${host.ip}=x${host.name}`).join(',') });
    expect(unknownServer.stdout, logOf(unknownServer)).toMatch(/server 'xh1' is not in backend 'app'/);
    // Only h1 takes traffic: draining it would empty the backend.
    for (const name of ['h2', 'h3']) await t.sb.execLb(`echo "set server app/${name} state maint" | python3 -c 'import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect("/run/haproxy/admin.sock");s.sendall(sys.stdin.buffer.read());print(s.recv(4096))'`);
    try {
      const lastUp = await t.run({ source, release: 'v6', strategy: 'hup' });
      expect(lastUp.stdout, logOf(lastUp)).toMatch(/would leave the backend with no server UP/);
    } finally {
      for (const name of ['h2', 'h3']) await t.sb.execLb(`echo "set server app/${name} state ready" | python3 -c 'import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect("/run/haproxy/admin.sock");s.sendall(sys.stdin.buffer.read());print(s.recv(4096))'`);
    }
    for (const host of t.sb.hosts) expect((await t.sb.exec(host.index, `ls ${t.sb.appDir}/releases`)).stdout).not.toContain('v6');
    await expectAllOn(t.sb, (await hostState(t.sb, 1)).current.replace('releases/', ''));
    await expectNoneDrained(t.sb);
  });

  it('a run killed by the runner after SIGTERM: the drained server was set ready at SIGTERM', async () => {
    const result = await t.run({ source: await t.source('v5b', { bootSeconds: 12 }), release: 'v5b', strategy: 'hup', 'health-timeout': '60' }, { cancelWhen: /HUP → / });
    expect(result.code, 'killed by the runner 10 s after SIGINT').toBe(137);
    // The HUP generation still boots (12 s) when the kill comes: only the SIGTERM handler can have set h1 ready.
    expect(result.stdout, logOf(result)).toMatch(/h1 set back to ready \(this run had drained it\)/);
    // h1 still boots the killed run's generation: HAProxy's check has it DOWN, but not drained.
    expect(Object.values(await t.sb.lbStatus()).filter((status) => /DRAIN|MAINT/.test(status))).toEqual([]);
  });
});

describe('uWSGI reload and chain behind HAProxy drain under load', () => {
  const t = harness('uwsgi');
  beforeAll(async () => {
    t.sb = await startServingSandbox({ hosts: 2, version: 'v1', server: 'uwsgi', app: { bootSeconds: 2 }, lbHost: true });
  }, 120_000);
  afterAll(() => t.stop());

  it('reload of a good release: 0 failed requests', async () => {
    const { result, load } = await underLoad(t.sb, async () => t.run({ source: await t.source('v2', { bootSeconds: 2 }), release: 'v2', strategy: 'reload' }));
    expect(result.outputs.status, logOf(result)).toBe('deployed');
    await expectAllOn(t.sb, 'v2');
    await expectNoneDrained(t.sb);
    console.log(`uwsgi reload + drain: ${load.requests} requests, max latency ${load.latency.max} ms`);
  });

  it('reload of a release with no app inside uWSGI: rolled back with 0 failed requests', async () => {
    const { result, load } = await underLoad(t.sb, async () =>
      t.run({ source: await t.source('v3', { failOnlyUnderUwsgi: true }), release: 'v3', strategy: 'reload', 'reload-timeout': '60' }),
    );
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    await expectAllOn(t.sb, 'v2');
    await expectNoneDrained(t.sb);
    console.log(`uwsgi no-app reload + drain: ${load.requests} requests, ${load.failed} failed`);
  });

  it('chain of a release with no app inside uWSGI behind drain: rolled back with 0 failed requests (without drain the app-less worker answers errors)', async () => {
    const { result, load } = await underLoad(t.sb, async () =>
      t.run({ source: await t.source('v4', { failOnlyUnderUwsgi: true }), release: 'v4', strategy: 'chain', 'reload-timeout': '60' }),
    );
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(result.stdout).toMatch(/accepts requests with no app loaded/);
    await expectAllOn(t.sb, 'v2');
    await expectNoneDrained(t.sb);
    console.log(`uwsgi no-app chain + drain: ${load.requests} requests, ${load.failed} failed`);
  });
});
