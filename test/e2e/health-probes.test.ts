/**
 * The readiness probe as users run it, on a real host: gunicorn bound to a unix socket (beside
 * the TCP port HAProxy uses) probed through an http+unix health-url under steady load; and a
 * release whose app redirects plain HTTP to https (Django's SECURE_SSL_REDIRECT), which fails its
 * gate at the first reading, saying where it was sent and what to set, and goes back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, expectWorkersServe, hostsOutput, logOf, releaseSources, underLoad } from './support/deploy-fixture.js';
import { masterFacts } from './support/gunicorn-facts.js';

describe('health-url over a unix socket, and a readiness URL that redirects (1 host)', () => {
  const sources = releaseSources();
  let sb: Sandbox;
  let socketUrl: string;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 1, version: 'v1', app: { unixSocket: true } });
    socketUrl = `http+unix://${encodeURIComponent(`${sb.appDir}/run/gunicorn.sock`)}/health/ready`;
  });
  afterAll(async () => {
    await sb?.stop();
    await sources.removeAll();
  });

  it('the socket answers what the port does: the probe reads it through http+unix, under load, and v2 is deployed', async () => {
    const direct = await sb.exec(1, `curl -s -m 5 --unix-socket ${sb.appDir}/run/gunicorn.sock http://localhost/health/ready`);
    expect(direct.stdout).toMatch(/"version": "v1"/);
    const { result } = await underLoad(sb, async () =>
      deployTo(sb, { source: await sources.source('v2', { unixSocket: true }), release: 'v2', strategy: 'usr2', 'health-url': socketUrl }),
    );
    expect(result.code, logOf(result)).toBe(0);
    expect(result.outputs).toMatchObject({ status: 'deployed', release: 'v2' });
    expect(result.stdout).toContain(`readiness gate: ${socketUrl} must name v2`);
    expect(result.stdout).toMatch(/readiness now: 200 v1/);
    expect(hostsOutput(result)[0]?.health).toMatch(/200/);
    await expectAllOn(sb, 'v2');
    await expectWorkersServe(sb, 1, (await masterFacts(sb, 1)).children, 'v2');
  });

  it('a release that redirects the probe to https fails its gate at the first reading, naming where and health-host; v2 serves again', async () => {
    const result = await deployTo(sb, {
      source: await sources.source('v3', { unixSocket: true, sslRedirect: true }),
      release: 'v3',
      strategy: 'usr2',
      'health-url': socketUrl,
      'health-timeout': '120',
    });
    expect(result.code).not.toBe(0);
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    expect(result.stdout).toMatch(/answered 301, a redirect to https:\/\/localhost\/health\/ready; the readiness probe does not follow redirects/);
    expect(result.stdout).toMatch(/set health-host to the name it serves/);
    // Failed at its first reading, not after health-timeout.
    const gate = hostsOutput(result)[0]?.timeline?.find((span) => span.phase === 'gate');
    expect(gate?.ok).toBe(false);
    expect(gate?.seconds).toBeLessThan(60);
    await expectAllOn(sb, 'v2');
  });
});
