import { describe, expect, it } from 'vitest';
import { hasHeartbeat } from '../../src/servers/gunicorn/gunicorn-versions.js';
import { parseChildren } from '../../src/servers/gunicorn/process-facts.js';
import { waitForGeneration } from '../../src/servers/gunicorn/generation.js';
import { LocalHost } from './support/local-host.js';

/** childrenCommand's output for a master with two workers, as sampled on this machine. */
function sample(children: string, uptime = '258.67'): string {
  return [
    'master.stat=S 1 6308 6308 0 -1 4194368 2375 0 1 0 4 1 0 0 20 0 1 0 19498 32583680',
    'master.exe=/usr/bin/python3.11',
    'master.cwd=/srv/app/releases/v1',
    'master.argv=gunicorn: master [app:application]',
    `master.uptime=${uptime}`,
    `master.children=${children} `,
    'master.pid=6310',
  ].join('\n');
}

describe('worker "booted" detection from the heartbeat file', () => {
  // Each pair: while the app still loads, then after the first notify(), sampled from real
  // gunicorn masters started from a virtualenv (upstream releases) and from Debian's package.
  it.each([
    ['20.1 (Debian, fchmod)', '16523:600:1795306735 16524:600:1795306735', '16523:0:1795306735 16524:1:1795306735'],
    ['21.2 (fchmod)', '15991:600:1795306728 15992:600:1795306728', '15991:0:1795306728 15992:0:1795306728'],
    ['23.0 (utime)', '11724:600:1795306680 11725:600:1795306680', '11724:600:258 11725:600:258'],
    ['26.1 (utime)', '14426:600:1795306702 14433:600:1795306703', '14426:600:258 14433:600:257'],
  ])('gunicorn %s: no worker booted before its first heartbeat, both after it', (_version, before, after) => {
    expect(parseChildren(sample(before))).toMatchObject({ children: expect.any(Array), booted: [] });
    const facts = parseChildren(sample(after));
    expect(facts?.booted).toEqual(facts?.children);
    expect(facts?.booted).toHaveLength(2);
  });

  it('tells booted and booting workers of one master apart', () => {
    expect(parseChildren(sample('21:600:258 22:600:1795306680 23:1:1795306680 24::'))).toMatchObject({ children: [21, 22, 23, 24], booted: [21, 23] });
  });

  it('a child without a heartbeat file (a USR2 child master) never counts as booted', () => {
    expect(parseChildren(sample('30:: 31:'))).toMatchObject({ children: [30, 31], booted: [] });
  });

  it('without an uptime reading only the fchmod heartbeat counts', () => {
    expect(parseChildren(sample('21:600:258 23:0:1795306680', ''))?.booted).toEqual([23]);
  });

  it('an mtime a moment past the uptime reading still is a monotonic heartbeat (whole seconds vs hundredths)', () => {
    expect(hasHeartbeat({ mode: '600', mtime: 259 }, 258.67)).toBe(true);
    expect(hasHeartbeat({ mode: '600', mtime: 261 }, 258.67)).toBe(false);
    expect(hasHeartbeat({ mode: '644', mtime: 1_795_306_680 }, 258.67)).toBe(false);
  });
});

describe('waiting for a new generation', () => {
  // Two workers that have booted (fchmod heartbeat), of master 6310 started at tick 19498.
  const host = new LocalHost('h1', (purpose) => (purpose.startsWith('read gunicorn pid') ? { stdout: sample('346:1:1795306735 351:0:1795306735'), stderr: '', code: 0 } : undefined));
  const master = { pid: 6310, startTime: '19498' };

  it('passes once the workers have booted and the ready check takes them', async () => {
    const facts = await waitForGeneration(host, master, { old: [], count: 2, timeoutSeconds: 1, isReady: async (workers) => workers });
    expect(facts.booted).toEqual([346, 351]);
  });

  it('when booted workers left no ready mark, the timeout says so (not that they did not boot)', async () => {
    const waiting = waitForGeneration(host, master, { old: [], count: 2, timeoutSeconds: 0.3, isReady: async () => [] });
    await expect(waiting).rejects.toThrow(/booted 346, 351.*no ready mark from 346, 351/);
    await expect(waiting).rejects.not.toThrow(/did not reach 2 booted/);
  });
});
