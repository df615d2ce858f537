import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { entryMatches, fingerprint, keyTypeOf, lookupName, parseKnownHosts, pinnedKeyAlgorithms, verifyHostKey } from '../../src/remote/known-hosts.js';

/** A syntactically real ssh-ed25519 public key blob. */
function ed25519Blob(seed: number, typeName = 'ssh-ed25519'): Buffer {
  const type = Buffer.from(typeName);
  const key = Buffer.alloc(32, seed);
  const lengths = (buffer: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, buffer.length]), buffer]);
  return Buffer.concat([lengths(type), lengths(key)]);
}

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

const keyA = ed25519Blob(1);
const keyB = ed25519Blob(2);

describe('known_hosts', () => {
  it('uses [host]:port for non-22 ports', () => {
    expect(lookupName('example.com', 22)).toBe('example.com');
    expect(lookupName('example.com', 2222)).toBe('[example.com]:2222');
  });

  it('matches plain, bracketed, wildcard and hashed entries', () => {
    const text = [
      `# comment`,
      `web1.example.com,10.0.0.1 ssh-ed25519 ${keyA.toString('base64')}`,
      `[web2.example.com]:2222 ssh-ed25519 ${keyA.toString('base64')} comment here`,
      `*.internal ssh-ed25519 ${keyA.toString('base64')}`,
      `${hashed('[10.9.9.9]:2200')} ssh-ed25519 ${keyA.toString('base64')}`,
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(entries).toHaveLength(4);
    expect(verifyHostKey(entries, 'web1.example.com', 22, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(entries, '10.0.0.1', 22, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(entries, 'web2.example.com', 2222, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(entries, 'web2.example.com', 22, keyA)).toEqual({ ok: false, reason: 'unknown' });
    expect(verifyHostKey(entries, 'db.internal', 22, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(entries, '10.9.9.9', 2200, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(entries, '10.9.9.9', 22, keyA)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('reports a different key as a mismatch and an absent host as unknown', () => {
    const entries = parseKnownHosts(`web1 ssh-ed25519 ${keyA.toString('base64')}`);
    expect(verifyHostKey(entries, 'web1', 22, keyB)).toEqual({ ok: false, reason: 'mismatch' });
    expect(verifyHostKey(entries, 'web9', 22, keyA)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('honours negation and @revoked', () => {
    const entries = parseKnownHosts([`*.example.com,!evil.example.com ssh-ed25519 ${keyA.toString('base64')}`, `@revoked * ssh-ed25519 ${keyB.toString('base64')}`].join('\n'));
    expect(entryMatches(entries[0], 'evil.example.com', 22)).toBe(false);
    expect(verifyHostKey(entries, 'good.example.com', 22, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(entries, 'good.example.com', 22, keyB)).toEqual({ ok: false, reason: 'revoked' });
  });

  it('prints OpenSSH-style fingerprints and key types', () => {
    expect(fingerprint(keyA)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyTypeOf(keyA)).toBe('ssh-ed25519');
  });

  it('offers only the pinned key algorithms', () => {
    const entries = parseKnownHosts([`h ssh-rsa ${ed25519Blob(3, 'ssh-rsa').toString('base64')}`, `h ssh-ed25519 ${keyA.toString('base64')}`].join('\n'));
    expect(pinnedKeyAlgorithms(entries, 'h', 22)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
  });

  it('matches hashed entries against the lower-cased host name, as ssh does', () => {
    const entries = parseKnownHosts([`${hashed('web1.example.com')} ssh-ed25519 ${keyA.toString('base64')}`, `${hashed('[db.example.com]:2222')} ssh-ed25519 ${keyA.toString('base64')}`].join('\n'));
    expect(verifyHostKey(entries, 'Web1.Example.COM', 22, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(entries, 'DB.example.com', 2222, keyA)).toEqual({ ok: true });
    expect(verifyHostKey(parseKnownHosts(`WEB2.example.com ssh-ed25519 ${keyA.toString('base64')}`), 'web2.EXAMPLE.com', 22, keyA)).toEqual({ ok: true });
  });

  it.each([
    ['web1 ssh-ed25519', 'line 2 \\(web1 ssh-ed25519\\): expected'],
    [`web1 ssh-ed25519 ${keyA.toString('base64').slice(0, 30)}`, 'line 2 .*not a valid ssh-ed25519 public key'],
    [`web1 ssh-rsa ${keyA.toString('base64')}`, 'line 2 .*not a valid ssh-rsa public key'],
    [`web1 ssh-ed25519 not*base64`, 'line 2 .*not a valid ssh-ed25519'],
    [`|1|abc ssh-ed25519 ${keyA.toString('base64')}`, 'line 2 .*hashed host name must look like'],
    [`@cert-authority *.example.com ssh-ed25519 ${keyA.toString('base64')}`, 'line 2 .*@cert-authority lines are not supported .*ssh-keyscan'],
    [`@revoke web1 ssh-ed25519 ${keyA.toString('base64')}`, 'line 2 .*unknown marker @revoke'],
  ])('reports the malformed line %j by number', (line, message) => {
    const text = [`ok ssh-ed25519 ${keyA.toString('base64')}`, line, `other ssh-ed25519 ${keyB.toString('base64')}`].join('\n');
    expect(() => parseKnownHosts(text)).toThrow(new RegExp(`Invalid input 'known-hosts': ${message}`));
  });
});
