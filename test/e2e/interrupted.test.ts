/**
 * A run killed with SIGKILL (its runner gone: no cancel handler, no post step) at each phase of a
 * reload, on a real host under load: the next run arrives at the half-changed host, is told
 * clearly that the lock's run is gone, and after `mode: unlock` settles the host to one
 * consistent release by itself and deploys (or rolls back). The post step does the same for a
 * main step killed mid-reload, and does nothing after a clean run. Zero failed requests.
 *
 * A killed run's heartbeat goes stale 60 s after the kill; the tests age it instead of waiting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postStepEnv, runAction, sandboxInputs, type ActionResult } from '../support/run-action.js';
import type { AppOptions } from '../support/app-fixture.js';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { expectOneRelease, logOf, releaseSeries, underLoad } from './support/deploy-fixture.js';
import { masterFacts } from './support/gunicorn-facts.js';

const BOOT = { bootSeconds: 1 };

describe('arriving at a host a killed run left half-changed (1 host under load)', () => {
  let sb: Sandbox;
  const sources = releaseSeries(BOOT);
  const newRelease = sources.next;
  const lock = () => `${sb.appDir}/.deploy-lock`;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 1, version: 'v1', app: BOOT });
  });
  afterAll(async () => {
    await sb?.stop();
    await sources.removeAll();
  });

  const action = (inputs: Record<string, string>, opts: { killAt?: RegExp; env?: Record<string, string> } = {}): Promise<ActionResult> =>
    runAction(
      { ...sandboxInputs(sb), 'health-interval': '0.5', 'health-successes': '2', 'health-timeout': '60', ...inputs },
      { timeoutMs: 240_000, env: opts.env, cancelWhen: opts.killAt && { output: opts.killAt, signal: 'SIGKILL' } },
    );

  /** Deploys a new release and kills the action (the whole process tree) once its log shows `phase`. */
  async function killDeploy(phase: RegExp, extra: Record<string, string> = {}, app: Partial<AppOptions> = {}): Promise<{ killed: ActionResult; target: string; inputs: Record<string, string> }> {
    const target = await newRelease(app);
    const inputs = { source: target.dir, release: target.version, ...extra };
    const killed = await action(inputs, { killAt: phase });
    expect(killed.code, logOf(killed)).not.toBe(0);
    expect(killed.stdout, 'killed where intended').toMatch(phase);
    expect(killed.outputs.status, 'no output: the process was killed').toBeUndefined();
    expect((await sb.exec(1, `cat ${lock()}/owner`)).stdout, 'the dead run left its lock').toMatch(/token=/);
    return { killed, target: target.version, inputs };
  }

  /** What a person does after the next run said the lock's run is gone: mode unlock (the heartbeat aged as 60 s would). */
  async function unlockDeadRun(): Promise<void> {
    await sb.exec(1, `touch -d '2 minutes ago' ${lock()}/heartbeat`);
    const unlocked = await action({ mode: 'unlock', source: '', release: '' });
    expect(unlocked.code, logOf(unlocked)).toBe(0);
  }

  async function deployNew(extra: Record<string, string> = {}): Promise<ActionResult & { inputs: Record<string, string> }> {
    const target = await newRelease();
    const inputs = { source: target.dir, release: target.version, ...extra };
    const deployed = await action(inputs);
    expect(deployed.code, logOf(deployed)).toBe(0);
    expect(await expectOneRelease(sb, 1)).toBe(target.version);
    return { ...deployed, inputs };
  }

  /** The USR2 the killed run sent is acted on by gunicorn after the kill: wait for the new master beside the old one's workers. */
  async function expectTwoMasters(): Promise<void> {
    for (let attempt = 0; attempt < 40 && (await masterFacts(sb, 1)).children.length <= 2; attempt++) await new Promise((done) => setTimeout(done, 250));
    expect((await masterFacts(sb, 1)).children.length, 'two masters: the old one has the new one as a child').toBeGreaterThan(2);
  }

  it('usr2 killed after USR2: the next run names the dead lock; after unlock a rollback keeps the old master, then a deploy succeeds', async () => {
    await underLoad(sb, async () => {
      const { killed } = await killDeploy(/USR2 → \d+/);
      const before = /current (v\d+) \(previous/.exec(killed.stdout)?.[1];
      await expectTwoMasters();

      await sb.exec(1, `touch -d '2 minutes ago' ${lock()}/heartbeat`);
      const refused = await action({ mode: 'rollback', source: '', release: '' });
      expect(refused.code).not.toBe(0);
      expect(refused.stdout + refused.stderr).toMatch(/held by .*no longer running.*mode: unlock/);

      await unlockDeadRun();
      const rolledBack = await action({ mode: 'rollback', source: '', release: '' });
      expect(rolledBack.code, logOf(rolledBack)).toBe(0);
      expect(rolledBack.stdout).toMatch(/left by an interrupted run: two masters: the old one serves v\d+, the new master \d+ of an unfinished USR2/);
      expect(rolledBack.stdout).toMatch(/stopping the new master \d+; the old master \d+ keeps serving/);
      expect(await expectOneRelease(sb, 1)).toBe(before);
      await deployNew();
    });
  });

  it('usr2 killed after WINCH: the new master is the only one serving, so the next deploy commits it, then deploys', async () => {
    await underLoad(sb, async () => {
      const { target } = await killDeploy(/WINCH → \d+/);
      await unlockDeadRun();
      const deployed = await deployNew();
      expect(deployed.stdout).toMatch(new RegExp(`an idle old master \\d+ \\(its workers retired by WINCH\\) beside the new master \\d+, which serves ${target}`));
      expect(deployed.stdout).toMatch(/committing the new master \d+: it is the only one with workers/);
    });
  });

  it('usr2 killed right after WINCH with a long request in flight: the post step commits the new master once the request ends; the host serves, with workers', async () => {
    await underLoad(sb, async () => {
      // A 20 s request on an old worker: after WINCH that worker only finishes it (gunicorn's worker count is 0 until a HUP).
      let slowEnded = false;
      const slow = sb.exec(1, `curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:8000/sleep?ms=20000'`, { timeoutMs: 120_000 }).finally(() => (slowEnded = true));
      await new Promise((done) => setTimeout(done, 500));
      const { killed, target, inputs } = await killDeploy(/WINCH → \d+/);
      expect(slowEnded, 'the long request was still in flight at the kill').toBe(false);
      const post = await action(inputs, { env: postStepEnv(killed.state) });
      expect(post.code, logOf(post)).toBe(0);
      expect(post.stdout).toMatch(new RegExp(`an idle old master \\d+ \\(its workers retired by WINCH\\) beside the new master \\d+, which serves ${target}`));
      expect(post.stdout).toMatch(/committing the new master \d+: it is the only one with workers/);
      expect((await slow).stdout, 'the long request was answered').toBe('200');
      expect(await expectOneRelease(sb, 1)).toBe(target);
      expect((await masterFacts(sb, 1)).children.length, 'workers serve').toBeGreaterThan(0);
    });
  });

  it('usr2 killed after WINCH with a release that never gets ready: the post step gates the new master, and since it fails, HUPs the old master back and stops the new one', async () => {
    // No load: this release answers 503 to everything, and the kill left it serving until the post step.
    const before = await expectOneRelease(sb, 1);
    const { killed, inputs } = await killDeploy(/WINCH → \d+/, {}, { neverReady: true });
    const post = await action({ ...inputs, 'health-timeout': '8' }, { env: postStepEnv(killed.state) });
    expect(post.code, logOf(post)).toBe(0);
    expect(post.stdout).toMatch(/the new master \d+ \(v\d+\) does not pass the readiness gate the dead run never finished/);
    expect(post.stdout).toMatch(new RegExp(`HUP brings back the workers of master \\d+ \\(${before}\\), then the new master \\d+ is stopped`));
    expect(await expectOneRelease(sb, 1)).toBe(before);
    await underLoad(sb, async () => {
      await deployNew();
    });
  });

  it('usr2 killed after WINCH, and the new master lost with it: the post step HUPs the retired master back to work on the release it served', async () => {
    const before = await expectOneRelease(sb, 1);
    const { killed, inputs } = await killDeploy(/WINCH → \d+/);
    // The new master dies too (an OOM kill, say): left is the master WINCH retired, with no worker.
    // Its `<pidfile>.2` stays, as after any kill. No load here: until the post step, nothing serves on this host.
    const upgrade = (await masterFacts(sb, 1)).upgradePid;
    expect(upgrade, 'the unfinished upgrade is there to be lost').not.toBeNull();
    await sb.exec(1, `kill -9 ${upgrade}`);
    let facts = await masterFacts(sb, 1);
    for (let attempt = 0; attempt < 60 && facts.children.length > 0; attempt++) {
      await new Promise((done) => setTimeout(done, 250));
      facts = await masterFacts(sb, 1);
    }
    expect(facts, 'the retired master is alive, with no worker and no new master').toMatchObject({ alive: true, children: [] });

    const post = await action(inputs, { env: postStepEnv(killed.state) });
    expect(post.code, logOf(post)).toBe(0);
    expect(post.stdout).toMatch(new RegExp(`HUP brings back the workers of master ${facts.pid} \\(${before}\\)`));
    expect(post.stdout).toMatch(new RegExp(`master ${facts.pid} serves again with workers \\d+`));
    expect(await expectOneRelease(sb, 1)).toBe(before);
    // And the host deploys again from there.
    await underLoad(sb, async () => {
      await deployNew();
    });
  });

  it('rolling killed mid-roll: workers of two releases go back to the one that served before, then a deploy succeeds', async () => {
    await underLoad(sb, async () => {
      await killDeploy(/TTOU → \d+/, { strategy: 'rolling' });
      await unlockDeadRun();
      const deployed = await deployNew({ strategy: 'rolling' });
      expect(deployed.stdout).toMatch(/workers of v\d+ and v\d+ side by side under one master \(an interrupted rolling reload\)/);
      expect(deployed.stdout).toMatch(/reloading every worker into v\d+/);
    });
  });

  it('killed after the switch, before the reload: current is pointed back at what serves, then a deploy succeeds', async () => {
    await underLoad(sb, async () => {
      // rolling reads the config and watches the workers before its first signal: the kill lands before any.
      const { killed, target } = await killDeploy(/current → releases\/v\d+/, { strategy: 'rolling' });
      expect(killed.stdout).not.toMatch(/TTIN →/);
      await unlockDeadRun();
      const deployed = await deployNew();
      expect(deployed.stdout).toMatch(new RegExp(`current names ${target}, but every worker serves v\\d+ \\(a run died after switching, before reloading\\)`));
    });
  });

  it('the post step settles a host its main step left mid-reload and releases the lock; after a clean run it does nothing', async () => {
    const auditLines = async (host: number) => (await sb.exec(host, `cat ${sb.appDir}/deploy.log 2>/dev/null || true`)).stdout.trim().split('\n').filter(Boolean);
    const before = await auditLines(1);
    await underLoad(sb, async () => {
      const { killed, inputs } = await killDeploy(/USR2 → \d+/);
      await expectTwoMasters();
      expect(killed.state).toMatchObject({ isPost: 'true', token: expect.stringMatching(/^[0-9a-f]{12}$/), phases: expect.stringContaining('reloading') });
      expect(killed.state.finished).toBeUndefined();
      const post = await action(inputs, { env: postStepEnv(killed.state) });
      expect(post.code, logOf(post)).toBe(0);
      expect(post.stdout).toMatch(/settled \(was: two masters/);
      expect(post.summary).toMatch(/graceful-deploy post step/);
      await expectOneRelease(sb, 1);
      // The killed main step wrote no deploy.log line; the post step writes the run's line.
      const after = await auditLines(1);
      expect(after).toHaveLength(before.length + 1);
      expect(after.at(-1)).toMatch(/ deploy - -> v\d+ strategy=(usr2|auto) result=interrupted:settled:serves-v\d+ seconds=/);

      const clean = await deployNew();
      expect(clean.state.finished).toBe('true');
      const noop = await action(clean.inputs, { env: postStepEnv(clean.state) });
      expect(noop.code, logOf(noop)).toBe(0);
      expect(noop.stdout.trim()).toBe('graceful-deploy post: the main step finished on its own (its cleanup ran); nothing to do.');
    });
  });
});
