/**
 * The fleet rollout on 10 real hosts under steady load through HAProxy: hosts prepared in
 * parallel, the canary alone, then the rest together (the default plan); a release that fails
 * on one host of a later batch puts every touched host back; max-failed-hosts puts that host
 * back alone and the rollout goes on. Zero failed requests throughout. Wall times and the
 * comparison with one host at a time are the benchmark's job (npm run bench -- fleet).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/proc.js';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostState, hostsOutput, logOf, releaseSource, removeSource, underLoad } from './support/deploy-fixture.js';

const HOSTS = 10;
const BOOT = { bootSeconds: 2 };

describe(`fleet rollout on ${HOSTS} hosts (usr2, 2 s boot)`, () => {
  let sb: Sandbox;
  const sources: string[] = [];
  const source = async (version: string, notReadyFile?: string) => {
    const dir = await releaseSource({ version, ...BOOT, notReadyFile });
    sources.push(dir);
    return dir;
  };
  /** The file whose presence makes a release's readiness fail, on the hosts that have it. */
  const faultFile = () => `${sb.appDir}/shared/not-ready`;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: HOSTS, version: 'v1', app: BOOT });
  }, 240_000);
  afterAll(async () => {
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  it('the default plan: the canary alone, then the other nine together; every host on the new release', async () => {
    const { result } = await underLoad(sb, async () => deployTo(sb, { source: await source('v2'), release: 'v2', 'health-interval': '0.5', 'health-successes': '2' }));
    expect(result.outputs.status, logOf(result)).toBe('deployed');
    const hosts = hostsOutput(result);
    expect(hosts.map((host) => host.batch)).toEqual([0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(hosts.every((host) => host.status === 'deployed')).toBe(true);
    expect(result.stdout).toContain(`[runner] batch 1 (9 hosts): `);
    await expectAllOn(sb, 'v2');
  }, 300_000);

  it('a release failing on one host of the later batch: every touched host back on the previous release, reported per host', async () => {
    await sb.exec(7, `touch ${faultFile()}`);
    try {
      const { result } = await underLoad(sb, async () => deployTo(sb, { source: await source('v3', faultFile()), release: 'v3', 'health-timeout': '8', 'reload-timeout': '60' }));
      expect(result.outputs.status, logOf(result)).toBe('rolled-back');
      const hosts = hostsOutput(result);
      expect(hosts.map((host) => host.status)).toEqual(Array(HOSTS).fill('rolled-back'));
      expect(hosts[6]?.error).toMatch(/status 503/);
      await expectAllOn(sb, 'v2');
    } finally {
      await sb.exec(7, `rm -f ${faultFile()}`);
    }
  }, 300_000);

  it('canary-wait: a canary that stops answering ready while it is held is rolled back; nothing beyond it is touched', async () => {
    // Only v5 looks at this file: the release the canary goes back to stays ready.
    const fault = `${sb.appDir}/shared/not-ready-v5`;
    const before = await Promise.all(sb.hosts.map((host) => hostState(sb, host.index)));
    try {
      const { result } = await underLoad(sb, async () => {
        const deploying = deployTo(sb, { source: await source('v5', fault), release: 'v5', 'canary-wait': '30' });
        try {
          // Committed (current → v5, serving v5, no `.2` master left) means held: its readiness now fails.
          await waitFor(
            'the canary committed on v5',
            async () => {
              const files = await sb.exec(1, `[ "$(readlink ${sb.appDir}/current)" = releases/v5 ] && [ ! -e ${sb.appDir}/run/gunicorn.pid.2 ] && echo committed`);
              return files.stdout.includes('committed') && (await sb.probe(1)).version === 'v5';
            },
            { timeoutMs: 60_000, intervalMs: 100 },
          );
          await sb.exec(1, `touch ${fault}`);
        } finally {
          await deploying;
        }
        return deploying;
      });
      expect(result.outputs.status, logOf(result)).toBe('rolled-back');
      expect(result.stdout).toMatch(/canary stopped passing its readiness probe during canary-wait: status 503/);
      expect(hostsOutput(result).map((host) => host.status)).toEqual(['rolled-back', ...Array(HOSTS - 1).fill('pending')]);
      for (const host of sb.hosts) {
        const state = await hostState(sb, host.index);
        expect(state, `host ${host.name}`).toMatchObject({ current: before[host.index - 1]?.current, served: before[host.index - 1]?.served, status: 200 });
      }
    } finally {
      await sb.exec(1, `rm -f ${fault}`);
    }
  }, 300_000);

  it('max-failed-hosts 1: that host goes back alone, the rest deploy, the run succeeds naming it', async () => {
    await sb.exec(4, `touch ${faultFile()}`);
    try {
      const { result } = await underLoad(sb, async () =>
        deployTo(sb, { source: await source('v4', faultFile()), release: 'v4', 'health-timeout': '8', 'reload-timeout': '60', 'max-failed-hosts': '1' }),
      );
      expect(result.outputs.status, logOf(result)).toBe('deployed');
      const hosts = hostsOutput(result);
      expect(hosts.map((host) => host.status)).toEqual(hosts.map((_, i) => (i === 3 ? 'rolled-back' : 'deployed')));
      expect(result.stdout).toMatch(/failed and went back to the previous release alone; the rollout goes on \(max-failed-hosts: 1, 1 used\)/);
      for (const host of sb.hosts) {
        const state = await hostState(sb, host.index);
        expect(state.served, `host ${host.name}`).toBe(host.index === 4 ? 'v2' : 'v4');
      }
    } finally {
      await sb.exec(4, `rm -f ${faultFile()}`);
    }
  }, 300_000);
});
