/**
 * Issue 2's proof: the bundled action deploys to 3 real hosts (sshd in network namespaces,
 * Debian's gunicorn, HAProxy in front) under steady load, with strategy hup, and refuses or
 * rolls back every failure without a single failed request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostState, hostsOutput, logOf, releaseSource, removeSource, underLoad as underLoadOf } from './support/deploy-fixture.js';

describe('deploy with strategy hup on 3 hosts under load', () => {
  let sb: Sandbox;
  const sources: string[] = [];
  const source = async (version: string, app: Record<string, unknown> = {}) => {
    const dir = await releaseSource({ version, ...app });
    sources.push(dir);
    return dir;
  };
  /** Runs `body` under steady load through HAProxy and expects zero failed requests. */
  const underLoad = async <T>(body: () => Promise<T>): Promise<T> => (await underLoadOf(sb, body)).result;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 3, version: 'v1' });
  });
  afterAll(async () => {
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  /** What the runner sets for a run of a repository: the summary links the commit and the compare view from it. */
  const runner = { GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'acme/shop', GITHUB_SHA: '3f2c1e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e', GITHUB_ACTOR: 'octocat' };
  const first = () => `root@${sb.hosts[0].ip}`;

  it('v1 → v2: deployed, every host serves v2 from releases/v2, zero failed requests', async () => {
    const result = await underLoad(async () => deployTo(sb, { source: await source('v2'), release: 'v2', strategy: 'hup' }, runner));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v1', 'failed-hosts': '', message: 'graceful-deploy: deployed v2 to 3 hosts (was v1).' });
    expect(Number(result.outputs.duration)).toBeGreaterThan(0);
    expect(result.summary).toContain('Started by <b>octocat</b> · took ');
    expect(result.summary).toContain('<a href="https://github.com/acme/shop/compare/v1...v2">v1…v2</a>');
    expect(result.summary).toContain(`<td>${first()}</td><td>canary</td><td>✅ deployed</td><td>v2</td>`);
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['deployed', 'deployed', 'deployed']);
    await expectAllOn(sb, 'v2');
    expect((await hostState(sb, 1)).previous).toBe('releases/v1');
    expect(result.summary).toContain('deployed v2');
    expect(result.stdout).toMatch(/\[root@10\.[\d.]+\] HUP → \d+/);
  });

  it('a release whose app cannot be imported is stopped before any reload', async () => {
    const result = await underLoad(async () => deployTo(sb, { source: await source('v3', { importError: true }), release: 'v3', strategy: 'hup' }));
    expect(result.code).not.toBe(0);
    expect(result.outputs.status).toBe('failed');
    expect(result.stdout, logOf(result)).toMatch(/cannot be loaded by the master's interpreter[\s\S]*RuntimeError: fixture release v3: import error/);
    // The summary leads with the cause and the check's own output; the outputs name the host.
    expect(result.summary).toMatch(/<p><b>Cause:<\/b> &#91;root@[\d.]+&#93; the new release in \S+ cannot be loaded[^\n]*<\/p>\n<pre><code>[\s\S]*RuntimeError: fixture release v3: import error/);
    expect(result.outputs['failed-hosts']).toMatch(/^root@[\d.]+$/);
    expect(result.outputs.message).toMatch(/^graceful-deploy: deploy of v3 failed on root@[\d.]+\. \[root@[\d.]+\] the new release in \S+ cannot be loaded/);
    expect(result.stdout).not.toMatch(/HUP →/);
    await expectAllOn(sb, 'v2');
  });

  it('a release that boots but never gets ready is rolled back on every touched host', async () => {
    const result = await underLoad(async () =>
      deployTo(sb, { source: await source('v4', { neverReady: true }), release: 'v4', strategy: 'hup', 'health-timeout': '6' }),
    );
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(result.stdout).toMatch(/did not pass 3 checks in a row within 6s: last status 503/);
    expect(result.outputs['failed-hosts']).toBe(first());
    expect(result.outputs.message).toContain(`graceful-deploy: deploy of v4 failed on ${first()}; every host it reached is back on v2. [${first()}] `);
    expect(result.outputs.message).toContain('did not pass 3 checks in a row within 6s: last status 503');
    await expectAllOn(sb, 'v2');
  });

  it('a wrong or missing host key is refused before any change, naming host and fingerprint', async () => {
    const wrongKey = sb.knownHosts.replace(/^(\S+) ssh-ed25519 \S+/m, '$1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF');
    const wrong = await deployTo(sb, { source: await source('v5'), release: 'v5', 'known-hosts': wrongKey });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout, logOf(wrong)).toMatch(new RegExp(`\\[root@${sb.hosts[0].ip.replace(/\./g, '\\.')}\\] refusing to connect: the host key offered \\(ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}\\) does not match`));
    // Refused before any host was inspected: still named in the outputs and the summary.
    expect(wrong.outputs['failed-hosts']).toBe(first());
    expect(wrong.summary).toMatch(/<b>Cause:<\/b> &#91;root@[\d.]+&#93; refusing to connect/);
    const missing = await deployTo(sb, { source: await source('v5'), release: 'v5', 'known-hosts': sb.knownHosts.split('\n').slice(0, 2).join('\n') });
    expect(missing.stdout, logOf(missing)).toMatch(/refusing to connect: the host key offered .* is not in known-hosts/);
    for (const host of sb.hosts) {
      expect((await sb.exec(host.index, `ls ${sb.appDir}/releases`)).stdout).not.toContain('v5');
    }
    await expectAllOn(sb, 'v2');
  });

  it('hostile input values are rejected before connecting, or inert', async () => {
    const marker = `/tmp/gd-pwned-${sb.id}`;
    const hostile = `$(touch ${marker})`;
    const rejected: Record<string, string>[] = [
      { release: `v6;touch ${marker}` },
      { release: hostile },
      { 'app-dir': `${sb.appDir}/$(touch ${marker})` },
      { pidfile: `/tmp/x\`touch ${marker}\`` },
      { 'shared-paths': `.env;touch ${marker}` },
      { hosts: `${sb.hosts[0].ip};touch ${marker}` },
      { user: `root$(touch ${marker})` },
      { 'health-url': `ftp://127.0.0.1/$(touch ${marker})` },
      { strategy: `hup;touch ${marker}` },
      { 'wsgi-app': `app:application;touch ${marker}` },
    ];
    for (const inputs of rejected) {
      const result = await deployTo(sb, { source: await source('v6'), release: 'v6', ...inputs });
      expect(result.code, JSON.stringify(inputs)).not.toBe(0);
      expect(result.stdout, JSON.stringify(inputs)).toMatch(/Invalid input '[a-z-]+'/);
      expect(result.summary, JSON.stringify(inputs)).toMatch(/<b>Cause:<\/b> Invalid input &#39;[a-z-]+&#39;/);
    }
    // Accepted but inert: shell metacharacters inside a URL reach the host only quoted.
    const inert = await deployTo(sb, {
      source: await source('v6'),
      release: 'v6',
      strategy: 'hup',
      'health-url': `http://127.0.0.1:8000/health/ready?x=$(touch%20${marker})&y='\`id\`'`,
    });
    expect(inert.outputs.status, logOf(inert)).toBe('deployed');
    for (const host of sb.hosts) expect((await sb.exec(host.index, `test -e ${marker} && echo found || echo absent`)).stdout.trim()).toBe('absent');
    expect((await import('node:fs')).existsSync(marker)).toBe(false);
    await expectAllOn(sb, 'v6');
  });

  it('mode rollback returns every host to the previous release', async () => {
    const result = await underLoad(() => deployTo(sb, { mode: 'rollback', strategy: 'hup', source: '' }));
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs.message).toBe('graceful-deploy: rolled back to v2 on 3 hosts (was v6).');
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2', 'previous-release': 'v6', 'rollback-target': 'v1' });
    await expectAllOn(sb, 'v2');
    // previous now names the release before v2 on disk, so a second rollback goes further back, never forward to v6.
    expect((await hostState(sb, 2)).previous).toBe('releases/v1');
  });
});
