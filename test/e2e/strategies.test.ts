/**
 * The gunicorn strategies usr2 and rolling, proven on real hosts (sshd in network namespaces,
 * Debian's gunicorn, HAProxy in front) under steady load: each deploy ends on the new
 * generation and nothing of the old one is left; each failure (import error, never ready, a
 * new master whose workers cannot boot) ends on the previous release, for usr2 served by the
 * very master that served it before; strategies that cannot work (preload + hup/rolling,
 * foreground + usr2) are refused before anything changes. Zero failed requests throughout.
 * Latency is measured by the benchmark (npm run bench), not asserted here.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionResult } from '../support/run-action.js';
import { waitFor } from '../support/proc.js';
import { startSandbox, startServingSandbox, type AppOptions, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, expectWorkersServe, hostState, hostsOutput, logOf, releaseSource, removeSource, underLoad as underLoadOf } from './support/deploy-fixture.js';
import { alivePids, masterFacts, type MasterFacts } from './support/gunicorn-facts.js';

/** One sandbox per describe block, with load and release sources bound to it. */
function harness() {
  const ctx = {
    sb: undefined as unknown as Sandbox,
    sources: [] as string[],
    async source(version: string, app: Partial<AppOptions> = {}): Promise<string> {
      const dir = await releaseSource({ version, ...app });
      ctx.sources.push(dir);
      return dir;
    },
    /** Runs `body` under steady load through HAProxy and expects zero failed requests. */
    async underLoad<T>(body: () => Promise<T>): Promise<T> {
      return (await underLoadOf(ctx.sb, body)).result;
    },
    /** The master of every host, before a deploy. */
    async masters(): Promise<MasterFacts[]> {
      return Promise.all(ctx.sb.hosts.map((host) => masterFacts(ctx.sb, host.index)));
    },
    /** deployTo, keeping the action's log in $GD_E2E_LOG_DIR when set (to read after a green run too). */
    async deploy(inputs: Record<string, string>): Promise<ActionResult> {
      const result = await deployTo(ctx.sb, inputs);
      const dir = process.env.GD_E2E_LOG_DIR;
      if (dir) await writeFile(join(dir, `${Date.now()}-${inputs.strategy ?? 'usr2'}-${inputs.release ?? ''}.log`), logOf(result));
      return result;
    },
    async stop(): Promise<void> {
      await ctx.sb?.stop();
      await Promise.all(ctx.sources.map(removeSource));
    },
  };
  return ctx;
}

/** Nothing changed on the host: same master, same workers, no upgrade in progress. */
async function expectUntouched(sb: Sandbox, host: number, before: MasterFacts): Promise<void> {
  const now = await masterFacts(sb, host);
  expect(now, `h${host}`).toMatchObject({ pid: before.pid, alive: true, cwd: before.cwd, upgradePid: null });
  expect(now.children.sort(), `h${host} workers`).toEqual([...before.children].sort());
}

/** Same master; all workers new, none of the old ones alive, all serving `version`. */
async function expectRolled(sb: Sandbox, host: number, before: MasterFacts, version: string): Promise<MasterFacts> {
  const now = await masterFacts(sb, host);
  expect(now, `h${host}: the master stays`).toMatchObject({ pid: before.pid, alive: true, upgradePid: null });
  expect(now.cmdline).toMatch(/^gunicorn: master \[app:application\]/);
  expect(now.children).toHaveLength(before.children.length);
  for (const pid of now.children) expect(before.children, `h${host}: worker ${pid} is new`).not.toContain(pid);
  expect(await alivePids(sb, host, before.children), `h${host}: old workers gone`).toEqual([]);
  await expectWorkersServe(sb, host, now.children, version);
  return now;
}

/** Times a line occurs in the action's log. */
function count(result: ActionResult, pattern: RegExp): number {
  return result.stdout.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

describe('strategy usr2 on 3 hosts under load (an app that boots in 4 s)', () => {
  const t = harness();

  beforeAll(async () => {
    t.sb = await startServingSandbox({ hosts: 3, version: 'v1', app: { bootSeconds: 4 } });
  });
  afterAll(() => t.stop());

  it('v1 → v2: every host runs a new master in releases/v2 and nothing of the old generation is left', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () => t.deploy({ source: await t.source('v2', { bootSeconds: 4 }), release: 'v2', strategy: 'usr2' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v1' });
    const hosts = hostsOutput(result);
    expect(hosts.map((host) => host.status)).toEqual(['deployed', 'deployed', 'deployed']);
    await expectAllOn(sb, 'v2');
    expect(count(result, /\] USR2 → \d+/)).toBe(3);
    expect(count(result, /\] WINCH → \d+/)).toBe(3);

    for (const host of sb.hosts) {
      const old = before[host.index - 1];
      const now = await masterFacts(sb, host.index);
      expect(now.alive, `h${host.index}: pidfile names a live process`).toBe(true);
      expect(now.pid, `h${host.index}: a new master`).not.toBe(old.pid);
      expect(now.cmdline).toMatch(/^gunicorn: master \[app:application\]/);
      expect(now.cwd).toBe(`${sb.appDir}/releases/v2`);
      expect(now.upgradePid, 'no pidfile.2 left').toBeNull();
      expect(now.children).toHaveLength(2);
      expect(hosts[host.index - 1]).toMatchObject({ oldMasterPid: old.pid, newMasterPid: now.pid });
      expect(await alivePids(sb, host.index, [old.pid, ...old.children]), `h${host.index}: old master and workers gone`).toEqual([]);
      await expectWorkersServe(sb, host.index, now.children, 'v2');
    }
  });

  it('a release that cannot be imported is refused before any USR2: same masters keep serving v2', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () => t.deploy({ source: await t.source('v3', { importError: true }), release: 'v3', strategy: 'usr2' }));
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toMatch(/cannot be loaded by the master's interpreter[\s\S]*RuntimeError: fixture release v3: import error/);
    expect(result.stdout).not.toMatch(/USR2 →/);
    await expectAllOn(sb, 'v2');
    for (const host of sb.hosts) await expectUntouched(sb, host.index, before[host.index - 1]);
  });

  it('a release that boots but is never ready: the old master takes over again (same pid), the new one is gone', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () =>
      t.deploy({ source: await t.source('v4', { neverReady: true }), release: 'v4', strategy: 'usr2', 'health-timeout': '8' }),
    );
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(result.stdout).toMatch(/did not pass 3 checks in a row within 8s: last status 503/);
    await expectAllOn(sb, 'v2');

    const newMaster = Number(/new master (\d+) \(/.exec(result.stdout)?.[1]);
    expect(newMaster, logOf(result)).toBeGreaterThan(0);
    const old = before[0];
    const now = await masterFacts(sb, 1);
    expect(now, 'h1: the old master serves again').toMatchObject({ pid: old.pid, alive: true, cwd: `${sb.appDir}/releases/v2`, upgradePid: null });
    expect(now.children).toHaveLength(2);
    expect(now.children).not.toContain(newMaster);
    expect(await alivePids(sb, 1, [newMaster]), 'h1: the new master is gone').toEqual([]);
    await expectWorkersServe(sb, 1, now.children, 'v2');
    for (const host of [2, 3]) await expectUntouched(sb, host, before[host - 1]);
  });

  it('a release that passes the import check but whose workers cannot boot under gunicorn: the old master stays (same pid)', async () => {
    const { sb } = t;
    const before = await t.masters();
    const errorLog = `${sb.appDir}/shared/log/gunicorn-error.log`;
    const logStart = (await sb.exec(1, `wc -c < ${errorLog}`)).stdout.trim();
    const result = await t.underLoad(async () =>
      t.deploy({ source: await t.source('v5', { failOnlyUnderGunicorn: true }), release: 'v5', strategy: 'usr2', 'health-timeout': '20', 'server-log': errorLog }),
    );
    expect(result.code).not.toBe(0);
    expect(result.stdout, logOf(result)).toMatch(/release v5 loads with/); // the preflight passed it
    expect(result.stdout).toMatch(/USR2 → \d+/);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    await expectAllOn(sb, 'v2');

    // The new master really started and halted because its workers failed to boot.
    const log = (await sb.exec(1, `tail -c +$((${logStart} + 1)) ${sb.appDir}/shared/log/gunicorn-error.log`)).stdout;
    expect(log).toMatch(/RuntimeError: fixture release v5: import error under gunicorn only/);
    // gunicorn logs "Reason: Worker failed to boot." after stopping its workers; when a second
    // worker's boot error arrives during that stop (arbiter.stop sleeps, SIGCHLD re-enters
    // reap_workers), the same reason escapes as an uncaught HaltServer instead.
    expect(log).toMatch(/Reason: Worker failed to boot\.|HaltServer 'Worker failed to boot\.'/);
    for (const host of sb.hosts) await expectUntouched(sb, host.index, before[host.index - 1]);
    await expectWorkersServe(sb, 1, before[0].children, 'v2');
    // server-log: the worker's traceback is in the run's log and in the summary, read before the rollback.
    expect(result.stdout).toContain(`last lines of ${errorLog}:`);
    expect(result.stdout).toMatch(/last lines of [\s\S]*RuntimeError: fixture release v5/);
    expect(result.summary).toMatch(/<details><summary>Last lines of [^<]*'s server log[\s\S]*RuntimeError: fixture release v5/);
  });
});

describe('strategy rolling on 3 hosts under load (an app that boots in 4 s, ready hook installed)', () => {
  const t = harness();

  // The hook must be in the config the master loaded: TTIN forks workers with the master's
  // settings, so a hook added by a release takes effect only after the master re-reads its
  // config (a restart, a hup or usr2 deploy). Here gunicorn starts with it.
  beforeAll(async () => {
    t.sb = await startServingSandbox({ hosts: 3, version: 'v1', app: { bootSeconds: 4, readyHook: true } });
  });
  afterAll(() => t.stop());

  it('v1 → v2: every worker replaced one by one after its ready mark; the action says the hook is active', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () =>
      t.deploy({ source: await t.source('v2', { bootSeconds: 4, readyHook: true }), release: 'v2', strategy: 'rolling' }),
    );
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v1' });
    const hosts = hostsOutput(result);
    expect(hosts.map((host) => host.status)).toEqual(['deployed', 'deployed', 'deployed']);
    await expectAllOn(sb, 'v2');
    expect(count(result, /ready hook active: each new worker must report ready/)).toBe(3);
    expect(result.stdout).not.toMatch(/no ready hook marks found/);
    expect(count(result, /\] TTIN → \d+/)).toBe(6);
    expect(count(result, /\] TTOU → \d+/)).toBe(6);
    for (const host of sb.hosts) {
      const now = await expectRolled(sb, host.index, before[host.index - 1], 'v2');
      expect(hosts[host.index - 1]).toMatchObject({ oldMasterPid: now.pid, newMasterPid: now.pid });
      expect(hosts[host.index - 1]?.newWorkers?.sort()).toEqual(now.children.sort());
      const marks = (await sb.exec(host.index, `cd ${sb.appDir}/run/ready && for p in ${now.children.join(' ')}; do printf '%s ' "$p"; cat "$p"; done`)).stdout;
      for (const pid of now.children) expect(marks).toMatch(new RegExp(`^${pid} 200\\tv2\\t200 OK$`, 'm'));
    }
  });

  it('a release that cannot be imported is refused before any TTIN: workers untouched', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () =>
      t.deploy({ source: await t.source('v3', { importError: true, readyHook: true }), release: 'v3', strategy: 'rolling' }),
    );
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toMatch(/cannot be loaded by the master's interpreter[\s\S]*RuntimeError: fixture release v3: import error/);
    expect(result.stdout).not.toMatch(/TTIN →/);
    await expectAllOn(sb, 'v2');
    for (const host of sb.hosts) await expectUntouched(sb, host.index, before[host.index - 1]);
  });

  it('a release that boots but is never ready: its first worker\'s mark stops the roll; every worker is replaced again by one serving v2', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () =>
      t.deploy({ source: await t.source('v4', { neverReady: true, readyHook: true }), release: 'v4', strategy: 'rolling', 'health-timeout': '8' }),
    );
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(result.stdout).toMatch(/new worker \d+ is not ready: its readiness request answered '503 Service Unavailable'/);
    await expectAllOn(sb, 'v2');
    await expectRolled(sb, 1, before[0], 'v2');
    for (const host of [2, 3]) await expectUntouched(sb, host, before[host - 1]);
  });
});

describe('strategy rolling on 3 hosts under load without the ready hook (a fast-booting app)', () => {
  const t = harness();

  beforeAll(async () => {
    t.sb = await startServingSandbox({ hosts: 3, version: 'v1' });
  });
  afterAll(() => t.stop());

  it('v1 → v2 on the weaker "booted" signal, which the action says it uses', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () => t.deploy({ source: await t.source('v2'), release: 'v2', strategy: 'rolling' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v1' });
    expect(count(result, /no ready hook marks found: a new worker counts as ready once it has booted/)).toBe(3);
    expect(result.stdout).not.toMatch(/ready hook active/);
    await expectAllOn(sb, 'v2');
    for (const host of sb.hosts) await expectRolled(sb, host.index, before[host.index - 1], 'v2');
  });

  it('a release that boots but is never ready: the readiness gate catches it and every worker of the touched host is rolled back to v2', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () =>
      t.deploy({ source: await t.source('v3', { neverReady: true }), release: 'v3', strategy: 'rolling', 'health-timeout': '8' }),
    );
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(result.stdout).toMatch(/did not pass 3 checks in a row within 8s: last status 503/);
    await expectAllOn(sb, 'v2');
    await expectRolled(sb, 1, before[0], 'v2');
    for (const host of [2, 3]) await expectUntouched(sb, host, before[host - 1]);
  });
});

describe('a preload app (preload_app = True) on 1 host under load', () => {
  const t = harness();

  beforeAll(async () => {
    t.sb = await startServingSandbox({ hosts: 1, version: 'v1', app: { preload: true } });
  });
  afterAll(() => t.stop());

  it.each(['hup', 'rolling'])('strategy %s is refused up front (it would keep serving the preloaded v1), naming usr2', async (strategy) => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () =>
      t.deploy({ source: await t.source('v2', { preload: true }), release: 'v2', strategy, 'health-timeout': '10' }),
    );
    expect(result.outputs.status, logOf(result)).not.toBe('deployed');
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout, logOf(result)).toMatch(/preload_app is on[\s\S]*Use strategy: usr2/);
    expect(result.stdout).not.toMatch(/(HUP|TTIN) →/);
    await expectAllOn(sb, 'v1');
    await expectUntouched(sb, 1, before[0]);
  });

  it('usr2 deploys it: a new master imports v2 and serves it', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () => t.deploy({ source: await t.source('v2', { preload: true }), release: 'v2', strategy: 'usr2' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs.status).toBe('deployed');
    await expectAllOn(sb, 'v2');
    const now = await masterFacts(sb, 1);
    expect(now).toMatchObject({ alive: true, cwd: `${sb.appDir}/releases/v2`, upgradePid: null });
    expect(now.pid).not.toBe(before[0].pid);
    expect(await alivePids(sb, 1, [before[0].pid, ...before[0].children])).toEqual([]);
    await expectWorkersServe(sb, 1, now.children, 'v2');
  });
});

/** Ways a supervisor keeps gunicorn in the foreground as its child. */
const SUPERVISORS: { name: string; start: (sb: Sandbox) => Promise<void>; parent: RegExp }[] = [
  {
    // The sandbox's own: a shell whose -c script runs gunicorn (like Docker's shell-form CMD or a Procfile).
    name: 'startGunicorn(daemon: false): bash -c "…; gunicorn …"',
    start: (sb) => sb.startGunicorn(1, { daemon: false }),
    parent: /gd-supervisor/,
  },
  {
    // A supervisor script whose command line does not mention gunicorn.
    name: 'a supervisor script (bash supervise.sh)',
    start: async (sb) => {
      const script = `${sb.appDir}/shared/supervise.sh`;
      await writeFile(
        join(sb.hosts[0].appDirBacking, 'shared', 'supervise.sh'),
        [
          '#!/bin/bash',
          '# Keeps gunicorn in the foreground as its child, like a process manager.',
          `cd ${sb.appDir}/current || exit 1`,
          `exec </dev/null >>${sb.appDir}/shared/log/supervisor.log 2>&1`,
          '/usr/bin/gunicorn -c gunicorn.conf.py app:application',
          'echo "supervisor: gunicorn exited with status $?"',
          '',
        ].join('\n'),
      );
      const launched = await sb.exec(1, `setsid -f /bin/bash ${script}`);
      expect(launched.code, launched.stderr).toBe(0);
      await waitFor('gunicorn under supervise.sh to answer', async () => (await sb.probe(1)).status === 200, { timeoutMs: 30_000, intervalMs: 200 });
    },
    parent: /supervise\.sh/,
  },
];

describe.each(SUPERVISORS)('a foreground gunicorn on 1 host under load, supervised by $name', ({ start, parent }) => {
  const t = harness();

  beforeAll(async () => {
    const sb = await startSandbox({ hosts: 1 });
    t.sb = sb;
    await sb.seedRelease(1, 'v1', { version: 'v1' });
    await start(sb);
    await sb.waitForLb();
  });
  afterAll(() => t.stop());

  it('usr2 is refused before any change: the message says foreground and suggests rolling', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () => t.deploy({ source: await t.source('v2'), release: 'v2', strategy: 'usr2' }));
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout, logOf(result)).toMatch(/strategy 'usr2' cannot work here: gunicorn runs in the foreground[\s\S]*Use strategy: rolling/);
    expect(result.stdout).not.toMatch(/USR2 →|current → releases\/v2/);
    await expectAllOn(sb, 'v1');
    await expectUntouched(sb, 1, before[0]);
  });

  it('rolling deploys it; the master stays the supervisor\'s child', async () => {
    const { sb } = t;
    const before = await t.masters();
    const result = await t.underLoad(async () => t.deploy({ source: await t.source('v2'), release: 'v2', strategy: 'rolling' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v1' });
    expect(result.stdout).toMatch(/no ready hook marks found: a new worker counts as ready once it has booted/);
    expect(result.stdout).not.toMatch(/ready hook active/);
    await expectAllOn(sb, 'v2');
    expect((await hostState(sb, 1)).previous).toBe('releases/v1');
    const now = await masterFacts(sb, 1);
    expect(now.pid).toBe(before[0].pid);
    expect(now.children).toHaveLength(2);
    expect(await alivePids(sb, 1, before[0].children)).toEqual([]);
    await expectWorkersServe(sb, 1, now.children, 'v2');
    expect((await sb.exec(1, `ps -o args= -p $(ps -o ppid= -p ${now.pid})`)).stdout).toMatch(parent);
  });
});
