/**
 * Issue 11, bastion: a 2-host fleet whose sshd answers only the jump host (nftables in each
 * host resets every other SSH connection), deployed under load through it; and a bastion
 * whose key is not the pinned one, refused before anything changes.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processRunning, run, waitFor } from '../support/proc.js';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostState, logOf, releaseSources, underLoad } from './support/deploy-fixture.js';

describe('hosts reachable only through a bastion', () => {
  let sb: Sandbox;
  const { source, removeAll } = releaseSources();
  const bastionLabel = () => `root@${sb.bastion?.ip ?? '?'}`;
  /** The system ssh client to a host, directly or (`jump`) through the bastion with its own key. */
  const ssh = (host: number, jump: boolean) => {
    const bastion = sb.bastion;
    if (!bastion) throw new Error('the sandbox has no bastion');
    const proxy = `ProxyCommand=ssh -F /dev/null -i ${bastion.privateKeyPath} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${sb.knownHostsPath} -W %h:%p ${bastion.user}@${bastion.ip}`;
    return run('ssh', [...(jump ? ['-o', proxy] : []), ...sb.sshArgs(host), 'cat /etc/hostname >/dev/null; echo reached'], { timeoutMs: 20_000 });
  };

  /** What every host has on disk and serves, to compare before and after a refused run. */
  const states = () => Promise.all(sb.hosts.map((host) => hostState(sb, host.index)));
  /** Resolves once `current` on the host points at the release (the action has switched it). */
  const switched = async (host: number, release: string) => {
    await waitFor(`host ${host} to switch to ${release}`, async () => (await sb.exec(host, `readlink ${sb.appDir}/current`)).stdout.trim() === `releases/${release}`, {
      timeoutMs: 120_000,
      intervalMs: 100,
    });
  };

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 2, version: 'v1', bastion: true });
  });
  afterAll(async () => {
    await sb?.stop();
    await removeAll();
  });

  it('the hosts refuse SSH from the runner and answer it through the bastion', async () => {
    for (const host of sb.hosts) {
      const direct = await ssh(host.index, false);
      expect(direct.code, `direct ssh to ${host.name} must fail`).not.toBe(0);
      expect(direct.stderr).toMatch(/Connection refused|Connection reset/);
      const jumped = await ssh(host.index, true);
      expect(jumped.stdout.trim(), jumped.stderr).toBe('reached');
    }
  });

  it('deploys every host through the bastion under load, with zero failed requests', async () => {
    const { result, load } = await underLoad(sb, async () => deployTo(sb, { source: await source('v2'), release: 'v2', strategy: 'usr2' }));
    expect(result.outputs.status, logOf(result)).toBe('deployed');
    for (const host of sb.hosts) expect(result.stdout).toContain(`[root@${host.ip}] connected through the jump host ${bastionLabel()}`);
    expect(load.failed).toBe(0);
    await expectAllOn(sb, 'v2');
  });

  it('reconnects through a new bastion connection when the bastion drops mid-deploy, with zero failed requests', async () => {
    const bastion = sb.bastion;
    if (!bastion) throw new Error('the sandbox has no bastion');
    const accepted = async () => ((await readFile(bastion.sshdLog, 'utf8')).match(/Accepted publickey/g) ?? []).length;
    const before = await accepted();
    const { result } = await underLoad(sb, async () => {
      const running = deployTo(sb, { source: await source('v3'), release: 'v3', strategy: 'usr2', 'health-successes': '6', 'health-interval': '0.5' });
      await switched(1, 'v3');
      expect(await sb.dropBastionSessions(), 'bastion sessions killed').toBeGreaterThan(0);
      return running;
    });
    // The drop may catch a command of host 1 in flight (its gate fails: put back through the new
    // bastion connection) or only idle connections (the deploy goes on): never a stranded host.
    expect(['deployed', 'rolled-back'], logOf(result)).toContain(result.outputs.status);
    console.log(`bastion dropped mid-deploy: ${result.outputs.status}`);
    expect(result.stdout).toMatch(/SSH connection lost \(.*\); reconnecting/);
    expect(result.stdout).toContain('reconnected, host key verified');
    expect(result.stdout).not.toContain('NOT rolled back');
    expect(await accepted(), 'a second bastion connection').toBeGreaterThan(before);
    await expectAllOn(sb, result.outputs.status === 'deployed' ? 'v3' : 'v2');
  });

  it('refuses a bastion whose key is not the pinned one before any change', async () => {
    const bastion = sb.bastion;
    if (!bastion) throw new Error('the sandbox has no bastion');
    // The bastion's address pinned to another machine's key (host 1's): a man in the middle, as known-hosts sees it.
    const [, type, key] = sb.knownHosts.split('\n')[0]?.split(' ') ?? [];
    const knownHosts = sb.knownHosts.replace(bastion.knownHostsLine, `${bastion.ip} ${type} ${key}\n`);
    expect(knownHosts).not.toBe(sb.knownHosts);
    const before = await states();
    const result = await deployTo(sb, { 'known-hosts': knownHosts, source: await source('v6'), release: 'v6' });
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toContain(`[${bastionLabel()}] refusing to connect to the jump host: the host key offered (ssh-ed25519 SHA256:`);
    expect(result.stdout).toContain('does not match the key pinned in known-hosts');
    expect(await states()).toEqual(before);
    for (const host of sb.hosts) {
      const traces = await sb.exec(host.index, `ls -d ${sb.appDir}/.deploy-lock ${sb.appDir}/releases/v6 ${sb.appDir}/releases/.upload-v6* 2>/dev/null; true`);
      expect(traces.stdout.trim(), `lock or upload left on ${host.name}`).toBe('');
    }
  });

  it('names the bastion when it cannot be reached, before any change', async () => {
    const bastion = sb.bastion;
    if (!bastion) throw new Error('the sandbox has no bastion');
    // Nothing listens on port 2 of the bastion; its address is pinned there too, so only reachability fails.
    const knownHosts = `${sb.knownHosts}[${bastion.ip}]:2 ${bastion.knownHostsLine.split(' ').slice(1).join(' ')}`;
    const before = await states();
    const result = await deployTo(sb, { 'jump-host': `root@${bastion.ip}:2`, 'known-hosts': knownHosts, 'connect-timeout': '3', source: await source('v4'), release: 'v4' });
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toContain(`[root@${bastion.ip}:2] cannot connect to the jump host over SSH: connect ECONNREFUSED`);
    expect(await states()).toEqual(before);
  });

  it('names the bastion when it refuses to forward to a host, before any change on the others', async () => {
    const [one, two] = sb.hosts;
    if (!one || !two) throw new Error('two hosts expected');
    // Port 2 of host 2 is closed: the bastion's connection to it is refused, so is the forward.
    const before = await states();
    const result = await deployTo(sb, { hosts: `${one.ip},${two.ip}:2`, 'connect-timeout': '5', source: await source('v5'), release: 'v5' });
    expect(result.outputs.status, logOf(result)).toBe('failed');
    expect(result.stdout).toContain(`[root@${two.ip}:2] the jump host ${bastionLabel()} could not open a connection to ${two.ip}:2:`);
    expect(await states()).toEqual(before);
    const traces = await sb.exec(one.index, `ls -d ${sb.appDir}/.deploy-lock ${sb.appDir}/releases/v5 2>/dev/null; true`);
    expect(traces.stdout.trim(), 'lock or upload left on host 1').toBe('');
  });

  it('stop() removes the bastion with the hosts: namespaces, links, processes, run dir', async () => {
    const pids = (await run('ip', ['netns', 'pids', `gd${sb.id}jb`])).stdout.split(/\s+/).filter(Boolean);
    expect(pids.length, 'the bastion runs (unshare, init, sshd)').toBeGreaterThanOrEqual(3);
    await sb.stop();
    expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(`gd${sb.id}`);
    expect((await run('ip', ['-o', 'link', 'show'])).stdout).not.toContain(`gd${sb.id}`);
    for (const pid of pids) expect(processRunning(Number(pid)), `pid ${pid} of the bastion`).toBe(false);
    expect(existsSync(sb.root)).toBe(false);
  });
});
