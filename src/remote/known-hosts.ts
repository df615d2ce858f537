import { createHash, createHmac } from 'node:crypto';
import { Inputs } from '../config/input-names.js';
import { InputError } from '../errors.js';

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  marker?: '@revoked';
  patterns: string[];
  keyType: string;
  key: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const HASHED = /^\|1\|[A-Za-z0-9+/]+={0,2}\|[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses known_hosts text: plain, wildcard, negated and hashed (`|1|salt|hash`) host patterns,
 * and `@revoked` keys. A line that is not one of these is an InputError naming its line number
 * (a silently dropped line would turn into a confusing "host not in known-hosts" later).
 */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const [index, rawLine] of text.split(/\r?\n/).entries()) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const problem = (why: string) => new InputError(Inputs.KnownHosts, `line ${index + 1} (${line.slice(0, 40)}${line.length > 40 ? '…' : ''}): ${why}`);
    const fields = line.split(/\s+/);
    const marker = fields[0]?.startsWith('@') ? fields.shift() : undefined;
    if (marker === '@cert-authority') {
      throw problem('@cert-authority lines are not supported (host certificates are not checked); pin each host key instead, with the lines `ssh-keyscan HOST` prints.');
    }
    if (marker !== undefined && marker !== '@revoked') throw problem(`unknown marker ${marker} (only @revoked is supported).`);
    const [patternText, keyType, keyText] = fields;
    if (!patternText || !keyType || !keyText) throw problem('expected `host[,host...] key-type base64-key`.');
    const patterns = patternText.split(',').filter(Boolean);
    const badHash = patterns.find((pattern) => pattern.startsWith('|') && !HASHED.test(pattern));
    if (badHash) throw problem('a hashed host name must look like |1|salt|hash.');
    const key = Buffer.from(keyText, 'base64');
    if (!BASE64.test(keyText) || keyTypeOf(key) !== keyType || !isWholeKeyBlob(key)) throw problem(`the key is not a valid ${keyType} public key (truncated or mangled when pasted?).`);
    entries.push({ marker, patterns, keyType, key });
  }
  return entries;
}

/**
 * Every SSH public key blob (ed25519, ecdsa, rsa, dsa, sk-*) is a sequence of length-prefixed
 * fields that ends exactly at the last byte: a key cut short when pasted does not.
 */
function isWholeKeyBlob(key: Buffer): boolean {
  let offset = 0;
  let fields = 0;
  while (offset < key.length) {
    if (offset + 4 > key.length) return false;
    offset += 4 + key.readUInt32BE(offset);
    fields += 1;
  }
  return offset === key.length && fields >= 2;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function lookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether a known_hosts entry applies to this host and port (negations exclude). */
export function entryMatches(entry: KnownHostEntry, host: string, port: number): boolean {
  // ssh lower-cases the host name before looking it up; hashed entries were made that way.
  const name = lookupName(host.toLowerCase(), port);
  let matched = false;
  for (const pattern of entry.patterns) {
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (patternMatches(body, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt = '', hash = ''] = pattern.split('|');
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return digest === hash;
  }
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(name);
}

/** OpenSSH's fingerprint format: `SHA256:` + unpadded base64 of the key blob's digest. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Key type named inside an SSH public key blob (first length-prefixed string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const length = key.readUInt32BE(0);
  if (length === 0 || 4 + length > key.length) return 'unknown';
  return key.subarray(4, 4 + length).toString('latin1');
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'mismatch' | 'revoked' };

/** Decides whether the key a host offered is pinned for it. */
export function verifyHostKey(entries: KnownHostEntry[], host: string, port: number, offered: Buffer): HostKeyVerdict {
  const forHost = entries.filter((entry) => entryMatches(entry, host, port));
  if (forHost.some((entry) => entry.marker === '@revoked' && entry.key.equals(offered))) return { ok: false, reason: 'revoked' };
  const pinned = forHost.filter((entry) => !entry.marker);
  if (pinned.some((entry) => entry.key.equals(offered))) return { ok: true };
  return { ok: false, reason: pinned.length > 0 ? 'mismatch' : 'unknown' };
}

/** Host key algorithms to offer so the server presents a key type we have pinned (ssh2 names). */
export function pinnedKeyAlgorithms(entries: KnownHostEntry[], host: string, port: number): string[] {
  const types = new Set(entries.filter((entry) => !entry.marker && entryMatches(entry, host, port)).map((entry) => entry.keyType));
  const algorithms: string[] = [];
  for (const type of types) {
    if (type === 'ssh-rsa') algorithms.push('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa');
    else algorithms.push(type);
  }
  return algorithms;
}
