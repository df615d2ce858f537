/**
 * Gunicorn under a real systemd (252, PID 1 of each sandbox host), with the units the common
 * tutorials write: the action finds the master as the service's MainPID (`service:` input, no
 * pidfile), `strategy: auto` picks what systemd can follow (rolling under socket activation or
 * Type=notify, usr2 under Type=forking with PIDFile=, where the pidfile is handed to the new
 * master so that systemd follows it), refusals name the unit change, and a deploy user with sudo
 * deploys an app that runs as www-data (`become:`). Steady load through HAProxy, zero failed
 * requests; after each deploy systemd still says the service is active with the master we expect.
 */
import { chmod } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServingSandbox, type AppOptions, type GunicornServiceOptions, type Sandbox, type SandboxOptions } from '../support/sandbox.js';
import type { ActionResult } from '../support/run-action.js';
import { deployTo, expectAllOn, hostState, logOf, releaseSources, underLoad } from './support/deploy-fixture.js';

const UNIT = 'gunicorn.service';

function harness(opts: Partial<SandboxOptions> & { service: GunicornServiceOptions }) {
  const ctx = {
    sb: undefined as unknown as Sandbox,
    sources: releaseSources(),
    /** A release source as a checkout has it (mode 0755: the app's user www-data reads what root uploads). */
    async source(release: string, app: Partial<AppOptions> = {}): Promise<string> {
      const dir = await ctx.sources.source(release, app);
      await chmod(dir, 0o755);
      return dir;
    },
    deploy: (inputs: Record<string, string>): Promise<ActionResult> => deployTo(ctx.sb, { service: UNIT, ...inputs }),
    /** Deploys `release` under load (zero failed requests) and returns the action's result. */
    async deployUnderLoad(release: string, inputs: Record<string, string> = {}, app: Partial<AppOptions> = {}): Promise<ActionResult> {
      const source = await ctx.source(release, app);
      return (await underLoad(ctx.sb, () => ctx.deploy({ source, release, ...inputs }))).result;
    },
    state: () => ctx.sb.serviceState(1, UNIT),
  };
  beforeAll(async () => {
    ctx.sb = await startServingSandbox({ hosts: 1, systemd: true, version: 'v1', app: { bootSeconds: 1 }, ...opts });
  });
  afterAll(async () => {
    await ctx.sb?.stop();
    await ctx.sources.removeAll();
  });
  return ctx;
}

/** The master's pid and its workers' pids, as the host's process table has them. */
async function workersOf(sb: Sandbox, master: number): Promise<number[]> {
  const listed = await sb.exec(1, `cat /proc/${master}/task/*/children`);
  return listed.stdout.split(/\s+/).filter(Boolean).map(Number).sort();
}

describe('gunicorn.service (Type=notify) with gunicorn.socket, as gunicorn docs write them', () => {
  const t = harness({ service: { type: 'notify', socket: true } });

  it('auto picks rolling (usr2 cannot work under socket activation), keeps the master systemd knows, serves v2', async () => {
    const before = await t.state();
    const oldWorkers = await workersOf(t.sb, before.mainPid);
    const result = await t.deployUnderLoad('v2');
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs.status).toBe('deployed');
    expect(result.stdout).toMatch(/strategy auto chose rolling: usr2 cannot work here: .*gunicorn\.socket \(socket activation\)/);
    await expectAllOn(t.sb, 'v2');
    const after = await t.state();
    expect(after, 'same master, still active').toMatchObject({ mainPid: before.mainPid, activeState: 'active' });
    const workers = await workersOf(t.sb, after.mainPid);
    for (const pid of workers) expect(oldWorkers, `worker ${pid} is new`).not.toContain(pid);
  });

  it('hup works under the unit too (the master systemd knows reloads in place)', async () => {
    const before = await t.state();
    const result = await t.deployUnderLoad('v3', { strategy: 'hup' });
    expect(result.code, logOf(result)).toBe(0);
    await expectAllOn(t.sb, 'v3');
    expect(await t.state()).toMatchObject({ mainPid: before.mainPid, activeState: 'active' });
  });

  it('usr2 asked for by name is refused before anything changes, naming socket activation and the unit change', async () => {
    const before = await t.state();
    const result = await t.deploy({ source: await t.source('v4'), release: 'v4', strategy: 'usr2' });
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/strategy 'usr2' cannot work here: .*gunicorn\.socket \(socket activation\).*Type=forking, PIDFile=.*Nothing was switched or reloaded/s);
    expect(await hostState(t.sb, 1)).toMatchObject({ current: 'releases/v3', served: 'v3' });
    expect(await t.state()).toMatchObject({ mainPid: before.mainPid, activeState: 'active' });
  });

  it('a release the app user cannot read (root uploads a 0700 directory) is refused by the check, run as www-data: nothing switched', async () => {
    const before = await t.state();
    const source = await t.sources.source('v4'); // mkdtemp: 0700
    const result = await t.deploy({ source, release: 'v4' });
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/the new release in .*releases\/v4 cannot be loaded by the master's interpreter.*nothing was switched or reloaded.*(can't cd to|Permission denied)/s);
    expect(await hostState(t.sb, 1)).toMatchObject({ current: 'releases/v3', served: 'v3' });
    expect(await t.state()).toMatchObject({ mainPid: before.mainPid, activeState: 'active' });
  });

  it('a stopped service is reported as such, with the command to start it; nothing changes', async () => {
    await t.sb.systemctl(1, 'stop', UNIT, 'gunicorn.socket');
    try {
      const result = await t.deploy({ source: await t.source('v5'), release: 'v5' });
      expect(result.code).not.toBe(0);
      expect(result.stdout + result.stderr).toMatch(/service gunicorn\.service has no main process \(ActiveState=inactive\)\. Start it \(systemctl start gunicorn\.service/);
      expect((await hostState(t.sb, 1)).current).toBe('releases/v3');
    } finally {
      await t.sb.systemctl(1, 'start', 'gunicorn.socket', UNIT);
    }
  });
});

describe('gunicorn.service Type=forking with PIDFile= (daemonized gunicorn, its own socket), 2 hosts', () => {
  // Two hosts: while the canary's never-ready release is on it, HAProxy sends the load to the other.
  const t = harness({ service: { type: 'forking' }, hosts: 2 });

  it('auto picks usr2; the pidfile is handed to the new master and systemd follows it: MainPID is the new master, still active', async () => {
    const before = await t.state();
    const result = await t.deployUnderLoad('v2');
    expect(result.code, logOf(result)).toBe(0);
    expect(result.stdout).toMatch(/strategy auto chose usr2: the master is daemonized .*systemd follows it through gunicorn\.service's PIDFile=/);
    expect(result.stdout).toMatch(/now names the new master \d+, for systemd to follow/);
    await expectAllOn(t.sb, 'v2');
    const after = await t.state();
    expect(after.activeState).toBe('active');
    expect(after.mainPid, 'systemd follows the new master').not.toBe(before.mainPid);
    const alive = await t.sb.exec(1, `kill -0 ${before.mainPid} 2>/dev/null && echo alive || echo gone`);
    expect(alive.stdout.trim(), 'old master gone').toBe('gone');
    const pidfile = await t.sb.exec(1, 'cat /run/gunicorn/gunicorn.pid; ls /run/gunicorn');
    expect(pidfile.stdout).toContain(String(after.mainPid));
    expect(pidfile.stdout, 'no .2 left').not.toContain('gunicorn.pid.2');
    // systemd keeps managing it: a reload through systemctl reaches the new master.
    expect((await t.sb.systemctl(1, 'reload', UNIT)).code).toBe(0);
  });

  it('a release that never gets ready is rolled back to the old master, which systemd still knows', async () => {
    const before = await t.state();
    const result = await t.deployUnderLoad('v3', { 'health-timeout': '8' }, { neverReady: true });
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    await expectAllOn(t.sb, 'v2');
    expect(await t.state()).toMatchObject({ mainPid: before.mainPid, activeState: 'active' });
    // With service and no server-log, the failed host's last lines come from the unit's journal.
    expect(result.stdout).toMatch(/last lines of journal of gunicorn\.service:\n\[[^\]]+\] \d{4}-\d\d-\d\dT\S+ \S+ [^:\s]+: /);
    expect(result.summary).toMatch(/<details><summary>Last lines of [^<]*'s server log \(journal of gunicorn\.service\)<\/summary>/);
  });
});

describe('gunicorn.service Type=notify on a TCP port, deployed by a user with sudo (become: www-data)', () => {
  const t = harness({ service: { type: 'notify' }, sudoUser: true });

  it('usr2 asked for by name is refused: Type=notify cannot follow a new master', async () => {
    const result = await t.deploy({ source: await t.source('v2'), release: 'v2', strategy: 'usr2', user: t.sb.deployUser ?? '', become: 'www-data' });
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/Type=notify: systemd follows only its main pid/);
    expect((await hostState(t.sb, 1)).current).toBe('releases/v1');
  });

  it('the deploy user deploys with become: www-data (auto picks rolling)', async () => {
    const before = await t.state();
    const result = await t.deployUnderLoad('v2', { user: t.sb.deployUser ?? '', become: 'www-data' });
    expect(result.code, logOf(result)).toBe(0);
    expect(result.stdout).toMatch(/strategy auto chose rolling: .*Type=notify/);
    await expectAllOn(t.sb, 'v2');
    expect(await t.state()).toMatchObject({ mainPid: before.mainPid, activeState: 'active' });
  });

  it('without the sudoers rule the run stops before any change and prints the line to add', async () => {
    await t.sb.setSudoers(1, '# no rules\n');
    const result = await t.deploy({ source: await t.source('v3'), release: 'v3', user: t.sb.deployUser ?? '', become: 'www-data' });
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/become: www-data: 'gddeploy' cannot run commands as www-data through sudo without a password.*gddeploy ALL=\(www-data\) NOPASSWD: ALL/s);
    expect((await hostState(t.sb, 1)).current).toBe('releases/v2');
  });
});
