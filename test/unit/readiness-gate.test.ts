import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { HealthSettings } from '../../src/config/settings.js';
import { healthProbe } from '../../src/health/health-commands.js';
import { failureOf, parseReading, parseReadings, redirectMessage, waitUntilReady } from '../../src/health/readiness-gate.js';
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

/** Runs a probe as the host would: its command, the URL on stdin. */
const runProbe = (probe: ReturnType<typeof healthProbe>) => run('/bin/sh', ['-c', probe.command.text], { input: probe.stdin });

describe('a burst of readiness probes', () => {
  it('takes `count` readings in one python start, a pause apart', async () => {
    const { url, requests } = await serve([[200, 'v2']]);
    const started = Date.now();
    const probe = healthProbe('python3', { url }, 5, 3, 0.2);
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
    const probe = healthProbe('python3', { url }, 5, 3, 0);
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

describe('the probe command', () => {
  it('passes the timing, unix socket and Host header as quoted words (empty words when unset), the URL on stdin', () => {
    const unix = healthProbe('/srv/venv/bin/python', { url: 'http+unix://%2Frun%2Fg%20x.sock/health/ready', socket: '/run/g x.sock', host: 'www.example.com' }, 5, 3, 0.2);
    expect(unix.command.text).toMatch(/^\/srv\/venv\/bin\/python -c '[^']*http\.client/);
    expect(unix.command.text.endsWith(" 5 3 0.2 '/run/g x.sock' www.example.com")).toBe(true);
    expect(unix.stdin).toBe('http+unix://%2Frun%2Fg%20x.sock/health/ready\n');
    expect(healthProbe('python3', { url: 'http://127.0.0.1:8000/health/ready' }, 5).command.text.endsWith(" 5 1 0 '' ''")).toBe(true);
  });
});

describe('the probe against real servers', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  /** A server answering 200 with the request's Host header as its body; on a unix socket when `socket` is given. */
  async function echoHost(socket?: string): Promise<{ url: string; seen: IncomingHttpHeaders[] }> {
    const seen: IncomingHttpHeaders[] = [];
    server = createServer((request, response) => {
      seen.push(request.headers);
      response.writeHead(200, { 'X-App-Version': 'v7' }).end(`${request.url} host=${request.headers.host}`);
    });
    if (socket) {
      await new Promise<void>((resolve) => server?.listen(socket, resolve));
      return { url: `http+unix://${encodeURIComponent(socket)}/health/ready?x=1`, seen };
    }
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health/ready`, seen };
  }

  it('speaks HTTP over the unix socket of an http+unix URL (Host: localhost unless health-host)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gd-probe-'));
    dirs.push(dir);
    const socket = join(dir, 'gunicorn.sock');
    const { url } = await echoHost(socket);
    const plain = parseReading((await runProbe(healthProbe('python3', { url, socket }, 5))).stdout);
    expect(plain).toEqual({ status: 200, version: 'v7', body: '/health/ready?x=1 host=localhost' });
    const named = parseReading((await runProbe(healthProbe('python3', { url, socket, host: 'www.example.com' }, 5))).stdout);
    expect(named.body).toBe('/health/ready?x=1 host=www.example.com');
  });

  it('sends health-host as the Host header over TCP too', async () => {
    const { url, seen } = await echoHost();
    const reading = parseReading((await runProbe(healthProbe('python3', { url, host: 'api.example.com:8443' }, 5))).stdout);
    expect(reading.status).toBe(200);
    expect(seen.map((headers) => headers.host)).toEqual(['api.example.com:8443']);
  });

  it('names a socket nobody listens on in its reading (status 0)', async () => {
    const socket = join(tmpdir(), `gd-probe-missing-${process.pid}.sock`);
    const reading = parseReading((await runProbe(healthProbe('python3', { url: 'http+unix://x/health/ready', socket }, 5))).stdout);
    expect(reading.status).toBe(0);
    expect(reading.body).toMatch(/FileNotFoundError|No such file/);
  });
});

describe('a readiness URL that redirects', () => {
  /** Answers every request with a 301 to the https URL, as Django's SECURE_SSL_REDIRECT does. */
  async function redirecting(): Promise<{ url: string; requests: () => number }> {
    let requests = 0;
    server = createServer((request, response) => {
      requests += 1;
      response.writeHead(301, { Location: `https://www.example.com${request.url}` }).end();
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health/ready`, requests: () => requests };
  }

  it('is not followed: the reading is the 301 and where it points, and the burst stops there', async () => {
    const { url, requests } = await redirecting();
    const readings = parseReadings((await runProbe(healthProbe('python3', { url }, 5, 3, 0))).stdout);
    expect(readings).toEqual([{ status: 301, location: 'https://www.example.com/health/ready', body: '' }]);
    expect(requests()).toBe(1);
    expect(failureOf(readings[0] ?? { status: 0, body: '' })).toBe('status 301, redirected to https://www.example.com/health/ready (redirects are not followed)');
  });

  it('fails the gate at once (not at its timeout), saying where it was sent and what to set', async () => {
    const { url } = await redirecting();
    const started = Date.now();
    const gate = waitUntilReady(localHost([]), 'python3', { ...settings(url), timeoutSeconds: 30 }, 'v2');
    await expect(gate).rejects.toThrow(/answered 301, a redirect to https:\/\/www\.example\.com\/health\/ready; the readiness probe does not follow redirects[\s\S]*health-url[\s\S]*health-host/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a redirect to https of the same path names the https redirect to exempt (Django SECURE_REDIRECT_EXEMPT), not only health-host', () => {
    const toHttps = redirectMessage('http://127.0.0.1:8000/health/ready', { status: 301, location: 'https://127.0.0.1:8000/health/ready', body: '' });
    expect(toHttps).toMatch(/SECURE_SSL_REDIRECT[\s\S]*SECURE_REDIRECT_EXEMPT = \[r"\^health\/ready\$"\]/);
    const elsewhere = redirectMessage('http://127.0.0.1:8000/health/ready', { status: 302, location: 'http://127.0.0.1:8000/login', body: '' });
    expect(elsewhere).not.toMatch(/SECURE_REDIRECT_EXEMPT/);
    expect(elsewhere).toMatch(/health-host/);
  });

  it('a 400 (Django refusing a Host outside ALLOWED_HOSTS) points at health-host', () => {
    expect(failureOf({ status: 400, body: 'Bad Request (400)' })).toMatch(/ALLOWED_HOSTS[\s\S]*set health-host/);
  });
});
