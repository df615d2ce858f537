import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HostKeyError } from '../../src/errors.js';
import { parseKnownHosts } from '../../src/remote/known-hosts.js';
import { hopConfig, type HopSpec } from '../../src/remote/ssh-config.js';

/** ssh-ed25519 public key blobs: the type string and 32 key bytes. */
const keyBlob = (byte: number) => Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, byte)]);
const PINNED = keyBlob(1);
const OTHER = keyBlob(2);

const spec = (overrides: Partial<HopSpec> = {}): HopSpec => ({
  target: { user: 'deploy', host: '10.0.1.11', port: 22, label: 'deploy@10.0.1.11' },
  credentials: { privateKey: 'KEY' },
  connectTimeoutSeconds: 20,
  knownHosts: parseKnownHosts(`10.0.1.11 ssh-ed25519 ${PINNED.toString('base64')}`),
  role: 'host',
  ...overrides,
});

describe('hopConfig', () => {
  it('connects over TCP with keepalive, the credentials given and the pinned key type', () => {
    const { config } = hopConfig(spec());
    expect(config).toMatchObject({ host: '10.0.1.11', port: 22, username: 'deploy', privateKey: 'KEY', readyTimeout: 20_000, keepaliveInterval: 5000, keepaliveCountMax: 3 });
    expect(config.algorithms).toEqual({ serverHostKey: ['ssh-ed25519'] });
    expect(config).not.toHaveProperty('agent');
    expect(config).not.toHaveProperty('sock');
  });

  it('through a jump host: the forwarded stream instead of host and port, keepalive on this hop too', () => {
    const sock = new PassThrough();
    const { config } = hopConfig(spec({ sock, credentials: { agent: '/tmp/agent' } }));
    expect(config.sock).toBe(sock);
    expect(config).not.toHaveProperty('host');
    expect(config).not.toHaveProperty('port');
    expect(config).toMatchObject({ agent: '/tmp/agent', keepaliveInterval: 5000, keepaliveCountMax: 3 });
    expect(config).not.toHaveProperty('privateKey');
  });

  it('verifies the key under the target\u2019s own name, also when it is reached through a stream', () => {
    const { config, refusal } = hopConfig(spec({ sock: new PassThrough() }));
    const verify = config.hostVerifier as (key: Buffer) => boolean;
    expect(verify(PINNED)).toBe(true);
    expect(refusal()).toBeUndefined();
    expect(verify(OTHER)).toBe(false);
    expect(refusal()).toBeInstanceOf(HostKeyError);
    expect(refusal()?.message).toMatch(/^\[deploy@10\.0\.1\.11\] refusing to connect: the host key offered \(ssh-ed25519 SHA256:.*\) does not match/);
  });

  it('names the jump host in its refusal', () => {
    const { config, refusal } = hopConfig(spec({ role: 'jump host', target: { user: 'jump', host: 'bastion', port: 2200, label: 'jump@bastion:2200' } }));
    expect((config.hostVerifier as (key: Buffer) => boolean)(PINNED)).toBe(false);
    expect(refusal()?.message).toMatch(/^\[jump@bastion:2200\] refusing to connect to the jump host: the host key offered .* is not in known-hosts\. Nothing was changed\.$/);
  });

  it('verifies nothing when host key checking is off', () => {
    const { config } = hopConfig(spec({ knownHosts: undefined }));
    expect(config.hostVerifier).toBeUndefined();
    expect(config.algorithms).toBeUndefined();
  });
});
