import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { healthProbe } from '../../src/health/health-commands.js';
import { parseReading, redactedUrl, urlSecrets } from '../../src/health/readiness-gate.js';
import { run } from '../../src/main.js';
import { run as runProcess } from '../support/proc.js';

describe('health-url credentials', () => {
  it('are left out of the URL as logs show it', () => {
    expect(redactedUrl('https://probe:s3cr%40t@10.0.0.5:8443/health/ready?x=1')).toBe('https://***@10.0.0.5:8443/health/ready?x=1');
    expect(redactedUrl('http://token123@127.0.0.1:8000/ready')).toBe('http://***@127.0.0.1:8000/ready');
    expect(redactedUrl('http://127.0.0.1:8000/ready?next=a@b')).toBe('http://127.0.0.1:8000/ready?next=a@b');
  });

  it('name the secret parts: the password (raw and decoded), or a lone user name', () => {
    expect(urlSecrets('https://probe:s3cr%40t@10.0.0.5/ready')).toEqual(['probe:s3cr%40t', 's3cr%40t', 's3cr@t']);
    expect(urlSecrets('http://token123@127.0.0.1/ready')).toEqual(['token123']);
    expect(urlSecrets('http://127.0.0.1:8000/health/ready')).toEqual([]);
    expect(urlSecrets('http://u:p;w@h/')).toEqual(['u:p;w', 'p;w', 'p%3Bw']);
  });
});

describe('the readiness probe', () => {
  it('sends the credentials of health-url as Basic authorization, not as part of the host name', async () => {
    const seen: (string | undefined)[] = [];
    const server = createServer((request, response) => {
      seen.push(request.headers.authorization);
      response.writeHead(200, { 'X-App-Version': 'v2' }).end(request.url);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const probe = healthProbe('python3', { url: `http://probe:s3cr%40t@127.0.0.1:${port}/health/ready?x=1` }, 5);
      const reading = parseReading((await runProcess('/bin/sh', ['-c', probe.command.text], { input: probe.stdin })).stdout);
      expect(reading).toEqual({ status: 200, version: 'v2', body: '/health/ready?x=1' });
      expect(seen).toEqual([`Basic ${Buffer.from('probe:s3cr@t').toString('base64')}`]);
    } finally {
      server.close();
    }
  });

  it('keeps health-url out of its command line, which every user of the host sees in ps: it goes through stdin', async () => {
    const url = (port: number) => `http://probe:s3cr%40t-ps@127.0.0.1:${port}/health/ready`;
    expect(healthProbe('python3', { url: url(1) }, 5).command.text).not.toMatch(/s3cr|probe:/);
    // For real: while the probe waits for its answer, no process on this machine shows the secret.
    let listed = '';
    const server = createServer((_request, response) => {
      void runProcess('ps', ['-eo', 'args']).then((ps) => {
        listed = ps.stdout;
        response.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const probe = healthProbe('python3', { url: url((server.address() as AddressInfo).port) }, 5);
      const reading = parseReading((await runProcess('/bin/sh', ['-c', probe.command.text], { input: probe.stdin })).stdout);
      expect(reading.status).toBe(200);
      expect(listed).toMatch(/python3 -c/);
      expect(listed).not.toContain('s3cr%40t-ps');
    } finally {
      server.close();
    }
  });
});

describe('the action', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
    process.exitCode = undefined;
    vi.restoreAllMocks();
  });

  /** What the action prints with these inputs; an empty hosts input stops it at validation, so nothing connects. */
  const printedWith = async (inputs: Record<string, string>): Promise<string[]> => {
    const printed: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      printed.push(String(chunk));
      return true;
    });
    Object.assign(process.env, inputs, { INPUT_HOSTS: '' });
    await run();
    return printed.join('').split('\n');
  };

  it('masks the credentials of health-url before anything else is printed', async () => {
    const lines = await printedWith({ 'INPUT_HEALTH-URL': 'http://probe:Sup3rS3cret@127.0.0.1:8000/health/ready' });
    expect(lines[0]).toBe('::add-mask::probe:Sup3rS3cret');
    expect(lines).toContain('::add-mask::Sup3rS3cret');
    expect(lines.filter((line) => line.includes('Sup3rS3cret') && !line.startsWith('::add-mask::'))).toEqual([]);
  });

  it('masks jump-ssh-key, whole and line by line, like ssh-key', async () => {
    const lines = await printedWith({ 'INPUT_JUMP-SSH-KEY': '-----BEGIN OPENSSH PRIVATE KEY-----\nJumpKeyBody0123456789\n-----END OPENSSH PRIVATE KEY-----' });
    expect(lines).toContain('::add-mask::JumpKeyBody0123456789');
    expect(lines.filter((line) => line.includes('JumpKeyBody') && !line.startsWith('::add-mask::'))).toEqual([]);
  });
});
