import type { Duplex } from 'node:stream';
import type { Config } from 'node-ssh';
import type { HostTarget } from '../config/settings.js';
import { HostKeyError } from '../errors.js';
import { fingerprint, keyTypeOf, pinnedKeyAlgorithms, verifyHostKey, type KnownHostEntry } from './known-hosts.js';
import { keepaliveOf } from './ssh-link.js';

/** What one SSH hop authenticates with: a key (and its passphrase) or an agent. */
export interface SshCredentials {
  privateKey?: string;
  passphrase?: string;
  agent?: string;
}

/** One hop to open: the target, how to log in, and the known_hosts entries that pin it (undefined = not checked). */
export interface HopSpec {
  target: HostTarget;
  credentials: SshCredentials;
  connectTimeoutSeconds: number;
  knownHosts: KnownHostEntry[] | undefined;
  /** Names the target in a refusal: 'host' or 'jump host'. */
  role: 'host' | 'jump host';
  /** A stream already reaching the target's sshd (a jump host's forward); undefined = TCP to host:port. */
  sock?: Duplex;
}

/**
 * The node-ssh config of one hop, and the host key refusal its verifier recorded, if any. The
 * same verification applies to every hop: a host reached through a bastion is looked up in
 * known-hosts under its own name and port, as `ssh -J` does.
 */
export function hopConfig(spec: HopSpec): { config: Config; refusal: () => HostKeyError | undefined } {
  const { target, credentials, knownHosts } = spec;
  let refusal: HostKeyError | undefined;
  const config: Config = {
    username: target.user,
    readyTimeout: spec.connectTimeoutSeconds * 1000,
    ...keepaliveOf(spec.connectTimeoutSeconds),
  };
  if (spec.sock) config.sock = spec.sock;
  else Object.assign(config, { host: target.host, port: target.port });
  if (credentials.privateKey) config.privateKey = credentials.privateKey;
  if (credentials.passphrase) config.passphrase = credentials.passphrase;
  if (credentials.agent) config.agent = credentials.agent;
  if (knownHosts) {
    const algorithms = pinnedKeyAlgorithms(knownHosts, target.host, target.port);
    if (algorithms.length > 0) config.algorithms = { serverHostKey: algorithms as never };
    config.hostVerifier = (key: Buffer): boolean => {
      const verdict = verifyHostKey(knownHosts, target.host, target.port, key);
      if (verdict.ok) return true;
      refusal = hostKeyRefusal(target, spec.role, key, verdict.reason);
      return false;
    };
  }
  return { config, refusal: () => refusal };
}

function hostKeyRefusal(target: HostTarget, role: HopSpec['role'], key: Buffer, reason: 'unknown' | 'mismatch' | 'revoked'): HostKeyError {
  const offered = `${keyTypeOf(key)} ${fingerprint(key)}`;
  const why = {
    unknown: 'is not in known-hosts',
    mismatch: 'does not match the key pinned in known-hosts (the host was reinstalled, or someone is in the middle)',
    revoked: 'is marked @revoked in known-hosts',
  }[reason];
  const whom = role === 'host' ? '' : ` to the ${role}`;
  return new HostKeyError(`refusing to connect${whom}: the host key offered (${offered}) ${why}. Nothing was changed.`, target.label);
}
