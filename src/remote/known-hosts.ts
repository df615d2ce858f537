import { createHash, createHmac } from 'node:crypto';

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  marker?: '@revoked' | '@cert-authority';
  patterns: string[];
  keyType: string;
  key: Buffer;
}

/** Parses known_hosts text: plain, wildcard, negated and hashed (`|1|salt|hash`) host patterns. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0] === '@revoked' || fields[0] === '@cert-authority' ? fields.shift() : undefined;
    const [patterns, keyType, keyText] = fields;
    if (!patterns || !keyType || !keyText) continue;
    entries.push({
      marker: marker as KnownHostEntry['marker'],
      patterns: patterns.split(','),
      keyType,
      key: Buffer.from(keyText, 'base64'),
    });
  }
  return entries;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function lookupName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether a known_hosts entry applies to this host and port (negations exclude). */
export function entryMatches(entry: KnownHostEntry, host: string, port: number): boolean {
  const name = lookupName(host, port);
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
