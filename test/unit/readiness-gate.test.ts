import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthSettings } from '../../src/config/settings.js';
import { healthProbe } from '../../src/health/health-commands.js';
import { parseReadings, waitUntilReady } from '../../src/health/readiness-gate.js';
import type { RemoteHost } from '../../src/remote/remote-host.js';
import { run } from '../support/proc.js';

/**
 * The gate against a real HTTP server on loopback, its probe run by the real python3: a host
 * whose commands run here, recording each command's purpose.
 */
function localHost(purposes: string[]): RemoteHost {
  return {
    name: 'local',
    async exec(purpose, command, options) {
      purposes.push(purpose);
      const result = await run('/bin/sh', ['-c', command.text], { input: options?.stdin });
      return { stdout: result.stdout, stderr: result.stderr, code: result.code ?? -1 };
    },
    upload: async () => undefined,
    close: async () => undefined,
  };
}

let server: Server | undefined;
afterEach(() => server?.close());

/** Serves the answers in order (the last one from then on), as [status, version]. */
async function serve(answers: [number, string][]): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  server = createServer((_request, response) => {
    const [status, version] = answers[Math.min(requests, answers.length - 1)] ?? [500, ''];
    requests += 1;
    response.writeHead(status, { 'X-App-Version': version }).end(`{"version": "${version}"}`);
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health/ready`, requests: () => requests };
}

const settings = (url: string): HealthSettings => ({ url, timeoutSeconds: 10, intervalSeconds: 0.05, successes: 3, expectVersion: 'auto' });

describe('a burst of readiness probes', () => {
  it('takes `count` readings in one python start, a pause apart', async () => {
    const { url, requests } = await serve([[200, 'v2']]);
    const started = Date.now();
    const probe = healthProbe('python3', url, 5, 3, 0.2);
    const result = await run('/bin/sh', ['-c', probe.command.text], { input: probe.stdin });
    expect(parseReadings(result.stdout).map((reading) => [reading.status, reading.version])).toEqual([
      [200, 'v2'],
      [200, 'v2'],
      [200, 'v2'],
    ]);
    expect(requests()).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('stops after the first answer that is not 2xx', async () => {
    const { url, requests } = await serve([[200, 'v2'], [503, 'v2'], [200, 'v2']]);
    const probe = healthProbe('python3', url, 5, 3, 0);
    const result = await run('/bin/sh', ['-c', probe.command.text], { input: probe.stdin });
    expect(parseReadings(result.stdout).map((reading) => reading.status)).toEqual([200, 503]);
    expect(requests()).toBe(2);
  });
});

describe('the readiness gate', () => {
  it('passes after three readings in a row name the version, taking what the streak still needs in one burst', async () => {
    const { url, requests } = await serve([[200, 'v1'], [200, 'v1'], [503, 'v2'], [200, 'v2']]);
    const purposes: string[] = [];
    const passed = await waitUntilReady(localHost(purposes), 'python3', settings(url), 'v2');
    expect(passed.reading.version).toBe('v2');
    // v1, v1 (a burst of 3 goes on past a wrong version), 503 (ends that burst); then 3 × v2 in one burst.
    expect(requests()).toBe(6);
    expect(purposes).toEqual(['readiness probe', 'readiness probe']);
  });

  it('fails within its timeout naming the last answer when no streak forms', async () => {
    const { url } = await serve([[200, 'v2'], [503, 'v2']]);
    await expect(waitUntilReady(localHost([]), 'python3', { ...settings(url), timeoutSeconds: 1 }, 'v2')).rejects.toThrow(/did not pass 3 checks in a row within 1s: last status 503/);
  });
});
