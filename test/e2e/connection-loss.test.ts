/**
 * Issue 7, items 3, 4 and 11: SSH that drops and commands that time out, against 3 real hosts.
 * A host's SSH is cut by dropping TCP port 22 in its network namespace (nft), so its app keeps
 * serving through HAProxy while the action loses the host: mid-command, and while the
 * connection sits idle. The run must end with outputs and a status naming the host, the other
 * hosts put back, their locks released, and node alive to say so.
 */
import { writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionResult } from '../support/run-action.js';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostState, hostsOutput, logOf, releaseSource, removeSource, underLoad } from './support/deploy-fixture.js';

/** Quick detection: keepalive declares a silent connection dead after ~4 s, a reconnect attempt gives up after 3 s. */
const FAST_SSH = { 'connect-timeout': '3', strategy: 'hup' };
/** A gate of 6 passes 0.5 s apart: each host spends ~3 s in it, time enough to cut its SSH. */
const SLOW_GATE = { 'health-successes': '6', 'health-interval': '0.5' };

describe('SSH connection loss and command timeouts on 3 hosts', () => {
  let sb: Sandbox;
  const sources: string[] = [];
  const source = async (version: string) => {
    const dir = await releaseSource({ version });
    sources.push(dir);
    return dir;
  };
  const label = (host: number) => `root@${sb.hosts[host - 1]?.ip ?? '?'}`;
  const lockHeld = async (host: number) => (await sb.exec(host, `test -d ${sb.appDir}/.deploy-lock && echo held || echo free`)).stdout.trim();

  /** Drops every packet to and from the host's sshd; its app (port 8000) is untouched. */
  const cutSsh = (host: number) =>
    sb.exec(
      host,
      `nft add table inet gdcut && nft add chain inet gdcut in '{ type filter hook input priority 0; }' && nft add rule inet gdcut in tcp dport 22 drop` +
        ` && nft add chain inet gdcut out '{ type filter hook output priority 0; }' && nft add rule inet gdcut out tcp sport 22 drop`,
    );
  const restoreSsh = async (host: number) => {
    await sb.exec(host, 'nft delete table inet gdcut');
  };
  /** What the operator does after a host was lost: SSH back, and the lock the run could not release removed. */
  const repairHost = async (host: number) => {
    await sb.exec(host, `nft delete table inet gdcut; rm -rf ${sb.appDir}/.deploy-lock`);
  };
  /** Resolves once `current` on the host points at the release (the action has switched it). */
  const switched = async (host: number, release: string) => {
    for (const started = Date.now(); Date.now() - started < 120_000; ) {
      if ((await sb.exec(host, `readlink ${sb.appDir}/current`)).stdout.trim() === `releases/${release}`) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`host ${host} never switched to ${release}`);
  };
  /** The action ended by itself: outputs and summary written, no unhandled error from ssh2. */
  const expectOrderlyEnd = (result: ActionResult) => {
    expect(result.code, logOf(result)).toBe(1);
    expect(result.stderr).not.toMatch(/Unhandled|Keepalive timeout\n\s+at |ECONNRESET\n\s+at /);
    expect(result.outputs.status).toBeDefined();
    expect(result.summary).not.toBe('');
  };

  /**
   * Deploys `release` under load and cuts host `cut`'s SSH for good once host `after` has
   * switched; checks what every such run must show, then repairs the host as an operator would.
   */
  const deployCuttingSsh = async (release: string, hosts: { after: number; cut: number }): Promise<ActionResult> => {
    try {
      const { result } = await underLoad(sb, async () => {
        const run = deployTo(sb, { ...FAST_SSH, ...SLOW_GATE, source: await source(release), release });
        await switched(hosts.after, release);
        await cutSsh(hosts.cut);
        return run;
      });
      expectOrderlyEnd(result);
      expect(result.outputs.status, logOf(result)).toBe('failed');
      expect(result.stdout).toContain(`NOT rolled back — check by hand: ${label(hosts.cut)}`);
      return result;
    } finally {
      await repairHost(hosts.cut);
    }
  };

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 3, version: 'v1' });
  });
  afterAll(async () => {
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  it('a command that passes command-timeout is stopped on the host, not only abandoned', async () => {
    const marker = `sleep 313.${process.pid}`;
    const result = await deployTo(sb, { ...FAST_SSH, source: await source('v2'), release: 'v2', 'install-command': `${marker}; echo never`, 'command-timeout': '3' });
    expect(result.outputs.status, logOf(result)).toBe('failed');
    // The bracket keeps pgrep from finding the shell that runs it.
    const left = await sb.exec(1, `pgrep -af '[s]leep 313.${process.pid}' || echo none`);
    expect(left.stdout.trim(), 'the install command still runs on the host').toBe('none');
    expect(result.stdout).toContain(`[${label(1)}] install command failed (exit 124): did not finish within 3s and was stopped on the host`);
    for (const host of sb.hosts) expect(await lockHeld(host.index)).toBe('free');
  });

  it('a connection lost while idle is opened again (host key checked) and the deploy completes', async () => {
    const result = await underLoad(sb, async () => {
      const run = deployTo(sb, { ...FAST_SSH, ...SLOW_GATE, source: await source('v3'), release: 'v3' });
      await switched(1, 'v3');
      await cutSsh(3);
      // Long enough for keepalive to give host 3's idle connection up (~4 s), short of the reconnect attempts' end.
      await new Promise((resolve) => setTimeout(resolve, 8000));
      await restoreSsh(3);
      return run;
    });
    const outcome = result.result;
    expect(outcome.outputs.status, logOf(outcome)).toBe('deployed');
    expect(outcome.stdout).toContain(`[${label(3)}] SSH connection lost (Keepalive timeout); reconnecting`);
    expect(outcome.stdout).toContain(`[${label(3)}] reconnected, host key verified`);
    await expectAllOn(sb, 'v3');
  });

  it('a connection cut while idle: the host is named, the others rolled back, their locks released', async () => {
    // Host 3's connection is idle while host 1 reloads.
    const outcome = await deployCuttingSsh('v4', { after: 1, cut: 3 });
    const hosts = hostsOutput(outcome);
    expect(hosts.map((host) => host.status)).toEqual(['rolled-back', 'rolled-back', 'failed']);
    expect(hosts[2]?.error).toMatch(/the SSH connection was lost \(Keepalive timeout\) and 3 attempts to reconnect failed/);
    for (const host of [1, 2, 3]) expect((await hostState(sb, host)).served, `host ${host}`).toBe('v3');
    expect([await lockHeld(1), await lockHeld(2)]).toEqual(['free', 'free']);
  });

  it('a connection cut in the middle of a host\'s reload: the host is named, the others rolled back, their locks released', async () => {
    const started = Date.now();
    // Cut as soon as host 2 switched: its reload and readiness polls are in flight.
    const outcome = await deployCuttingSsh('v5', { after: 2, cut: 2 });
    const hosts = hostsOutput(outcome);
    expect(hosts.map((host) => host.status)).toEqual(['rolled-back', 'failed', 'pending']);
    expect(hosts[1]?.error).toMatch(/lost the SSH connection during .*\(Keepalive timeout\)|the SSH connection was lost \(Keepalive timeout\)/);
    expect((await hostState(sb, 1)).served).toBe('v3');
    expect((await hostState(sb, 3)).served).toBe('v3');
    expect([await lockHeld(1), await lockHeld(3)]).toEqual(['free', 'free']);
    // Keepalive (~4 s) and bounded reconnects (~22 s), not command-timeout (600 s), ended it.
    expect((Date.now() - started) / 1000).toBeLessThan(120);
  });

  it('a full disk during the upload names the host and the full path, before any switch', async () => {
    const releases = `${sb.appDir}/releases`;
    const before = await hostState(sb, 1);
    // A 1 MiB filesystem over releases/ on host 1 (its own mount namespace), holding its releases.
    const mounted = await sb.exec(
      1,
      `set -e; tmp=$(mktemp -d); cp -a ${releases}/. "$tmp"; mount -t tmpfs -o size=1m gd-small ${releases}; cp -a "$tmp"/. ${releases}; rm -rf "$tmp"`,
    );
    expect(mounted.code, mounted.stderr).toBe(0);
    try {
      const big = await source('v6');
      await writeFile(join(big, 'blob.bin'), randomBytes(3 * 1024 * 1024)); // does not compress
      const result = await deployTo(sb, { ...FAST_SSH, source: big, release: 'v6' });
      expect(result.outputs.status, logOf(result)).toBe('failed');
      expect(result.stdout).toMatch(new RegExp(`\\[${label(1).replace(/\./g, '\\.')}\\] the disk holding ${releases} \\(the filesystem mounted on ${releases}\\) is full: \\d+ bytes free, \\d+ bytes needed`));
      expect(result.stdout).not.toMatch(/HUP →/);
      expect(await hostState(sb, 1)).toEqual(before);
      expect((await sb.exec(1, `ls -A ${releases}`)).stdout).not.toMatch(/\.upload-|v6/);
    } finally {
      await sb.exec(1, `umount -l ${releases}`);
    }
  });
});
