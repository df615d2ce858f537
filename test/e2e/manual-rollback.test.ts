/**
 * Issue 20, item 3, on 2 real hosts (sshd in namespaces, Debian's gunicorn, HAProxy in front,
 * steady load throughout): a re-run of a deploy that succeeded does nothing and says so; a
 * deploy never replaces a release already on a host; mode: rollback walks back one release at
 * a time (never forward again), goes to a release named by `release`, and refuses a name that
 * is not on the hosts before anything changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostState, hostsOutput, logOf, releaseSources, underLoad } from './support/deploy-fixture.js';

describe('manual rollback and re-runs on 2 hosts under load', () => {
  let sb: Sandbox;
  const sources = releaseSources();
  /** Each host's master pid (the pidfile, checked alive). */
  const masters = async (): Promise<number[]> =>
    Promise.all(sb.hosts.map(async (host) => Number((await sb.exec(host.index, `pid=$(cat ${sb.appDir}/run/gunicorn.pid) && kill -0 "$pid" && echo "$pid"`)).stdout.trim())));
  const previousLinks = async (): Promise<string[]> => Promise.all(sb.hosts.map(async (host) => (await hostState(sb, host.index)).previous));

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 2, version: 'v1' });
  });
  afterAll(async () => {
    await sb?.stop();
    await sources.removeAll();
  });

  it('a re-run of a deploy that succeeded is a no-op with a notice: nothing uploaded, nothing reloaded', async () => {
    const source = await sources.source('v2');
    const first = await deployTo(sb, { source, release: 'v2' });
    expect(first.outputs.status, logOf(first)).toBe('deployed');
    const before = await masters();
    const stagedAt = (await sb.exec(1, `stat -c %Y.%i ${sb.appDir}/releases/v2`)).stdout.trim();

    const { result } = await underLoad(sb, () => deployTo(sb, { source, release: 'v2' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'unchanged', release: 'v2', 'previous-release': 'v2', 'rollback-target': 'v1' });
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['unchanged', 'unchanged']);
    expect(result.stdout).toMatch(/::notice::v2 is already current and serving on every host: nothing was deployed \(if-current: skip/);
    expect(result.stdout).not.toMatch(/::group::(Stage|Reload) /);
    expect(await masters()).toEqual(before);
    expect((await sb.exec(1, `stat -c %Y.%i ${sb.appDir}/releases/v2`)).stdout.trim()).toBe(stagedAt);
    await expectAllOn(sb, 'v2');

    // if-current: fail keeps the old refusal for those who want it.
    const refused = await deployTo(sb, { source, release: 'v2', 'if-current': 'fail' });
    expect(refused.outputs.status, logOf(refused)).toBe('failed');
    expect(refused.stdout).toMatch(/release v2 is already current on .* \(if-current: fail\)/);
  });

  it('a deploy never replaces a release already on a host: refused before any change', async () => {
    await sb.exec(2, `mkdir ${sb.appDir}/releases/v3 && echo kept > ${sb.appDir}/releases/v3/marker`);
    const before = await masters();
    const result = await deployTo(sb, { source: await sources.source('v3'), release: 'v3' });
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toMatch(/releases\/v3 already exists \(not current\): a deploy never replaces a release on disk/);
    expect((await sb.exec(2, `cat ${sb.appDir}/releases/v3/marker`)).stdout.trim()).toBe('kept');
    expect((await sb.exec(1, `test -e ${sb.appDir}/releases/v3 && echo yes || echo no`)).stdout.trim()).toBe('no');
    expect(await masters()).toEqual(before);
    await expectAllOn(sb, 'v2');
    await sb.exec(2, `rm -r ${sb.appDir}/releases/v3`);
  });

  it('mode rollback walks back one release at a time and says where the next one goes; a named release goes there', async () => {
    const v3 = await deployTo(sb, { source: await sources.source('v3'), release: 'v3' });
    expect(v3.outputs.status, logOf(v3)).toBe('deployed');
    expect(v3.outputs['rollback-target']).toBe('v2');

    // A name that is not on the hosts: refused before any change, listing what is there.
    const before = await masters();
    const missing = await deployTo(sb, { mode: 'rollback', release: 'v0' });
    expect(missing.outputs.status, logOf(missing)).toBe('failed');
    expect(missing.stdout).toMatch(/release v0 is not on this host, so there is nothing to roll back to\. Releases on disk \(oldest first\): v1, v2, v3\./);
    expect(await masters()).toEqual(before);
    await expectAllOn(sb, 'v3');

    const { result: back } = await underLoad(sb, () => deployTo(sb, { mode: 'rollback' }));
    expect(back.outputs, logOf(back)).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v3', 'rollback-target': 'v1' });
    expect(back.stdout).toMatch(/current → releases\/v2; previous → releases\/v1 \(where mode: rollback now goes\)/);
    await expectAllOn(sb, 'v2');
    expect(await previousLinks()).toEqual(['releases/v1', 'releases/v1']);

    // The second rollback goes further back, not forward to v3.
    const { result: again } = await underLoad(sb, () => deployTo(sb, { mode: 'rollback' }));
    expect(again.outputs, logOf(again)).toMatchObject({ status: 'deployed', release: 'v1', 'previous-release': 'v2', 'rollback-target': '' });
    expect(again.stdout).toMatch(/previous link removed \(no older release on disk/);
    await expectAllOn(sb, 'v1');

    // Forward again by name: v3 is still on disk.
    const { result: named } = await underLoad(sb, () => deployTo(sb, { mode: 'rollback', release: 'v3' }));
    expect(named.outputs, logOf(named)).toMatchObject({ status: 'deployed', release: 'v3', 'previous-release': 'v1', 'rollback-target': 'v2' });
    await expectAllOn(sb, 'v3');
    expect(await previousLinks()).toEqual(['releases/v2', 'releases/v2']);
    expect((await sb.exec(1, `tail -n 1 ${sb.appDir}/deploy.log`)).stdout).toMatch(/ rollback v1 -> v3 strategy=auto result=deployed /);
  });
});
