import { NodeSSH, type Config } from 'node-ssh';
import type { ClientChannel } from 'ssh2';
import type { HostTarget, SshSettings } from '../config/settings.js';
import { DeployError, HostKeyError, RemoteCommandError, errorMessage } from '../errors.js';
import { fingerprint, keyTypeOf, parseKnownHosts, pinnedKeyAlgorithms, verifyHostKey, type KnownHostEntry } from './known-hosts.js';
import type { ExecOptions, ExecResult, RemoteHost } from './remote-host.js';
import type { ShellFragment } from './shell-quote.js';

const STDERR_TAIL_LINES = 12;

/** Opens one verified SSH connection per host; used by main.ts, replaced by stubs in unit tests. */
export type RemoteHostFactory = (target: HostTarget) => Promise<RemoteHost>;

export function sshRemoteHostFactory(settings: SshSettings): RemoteHostFactory {
  const knownHosts = settings.knownHosts === undefined ? undefined : parseKnownHosts(settings.knownHosts);
  return (target) => connectSsh(target, settings, knownHosts);
}

async function connectSsh(target: HostTarget, settings: SshSettings, knownHosts: KnownHostEntry[] | undefined): Promise<RemoteHost> {
  const ssh = new NodeSSH();
  let refusal: HostKeyError | undefined;
  const config: Config = {
    host: target.host,
    port: target.port,
    username: target.user,
    readyTimeout: settings.connectTimeoutSeconds * 1000,
    keepaliveInterval: 10_000,
    keepaliveCountMax: 6,
  };
  if (settings.privateKey) config.privateKey = settings.privateKey;
  if (settings.passphrase) config.passphrase = settings.passphrase;
  if (settings.agent) config.agent = settings.agent;
  if (knownHosts) {
    const algorithms = pinnedKeyAlgorithms(knownHosts, target.host, target.port);
    if (algorithms.length > 0) config.algorithms = { serverHostKey: algorithms as never };
    config.hostVerifier = (key: Buffer): boolean => {
      const verdict = verifyHostKey(knownHosts, target.host, target.port, key);
      if (verdict.ok) return true;
      refusal = hostKeyRefusal(target, key, verdict.reason);
      return false;
    };
  }
  try {
    await ssh.connect(config);
  } catch (error) {
    ssh.dispose();
    if (refusal) throw refusal;
    throw new DeployError(`cannot connect over SSH: ${errorMessage(error)}`, target.label);
  }
  return new SshRemoteHost(target.label, ssh, settings.commandTimeoutSeconds);
}

function hostKeyRefusal(target: HostTarget, key: Buffer, reason: 'unknown' | 'mismatch' | 'revoked'): HostKeyError {
  const offered = `${keyTypeOf(key)} ${fingerprint(key)}`;
  const why = {
    unknown: 'is not in known-hosts',
    mismatch: 'does not match the key pinned in known-hosts (the host was reinstalled, or someone is in the middle)',
    revoked: 'is marked @revoked in known-hosts',
  }[reason];
  return new HostKeyError(`refusing to connect: the host key offered (${offered}) ${why}. Nothing was changed.`, target.label);
}

class SshRemoteHost implements RemoteHost {
  constructor(
    readonly name: string,
    private readonly ssh: NodeSSH,
    private readonly timeoutSeconds: number,
  ) {}

  async exec(purpose: string, command: ShellFragment, options: ExecOptions = {}): Promise<ExecResult> {
    const seconds = options.timeoutSeconds ?? this.timeoutSeconds;
    let channel: ClientChannel | undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        channel?.close();
        reject(new RemoteCommandError(purpose, this.name, -1, `no answer within ${seconds}s`));
      }, seconds * 1000);
    });
    try {
      const response = await Promise.race([
        this.ssh.execCommand(command.text, {
          stdin: options.stdin,
          onChannel: (opened) => {
            channel = opened;
          },
        }),
        timeout,
      ]);
      const result = { stdout: response.stdout, stderr: response.stderr, code: response.code ?? -1 };
      if (result.code !== 0 && !options.allowFailure) {
        throw new RemoteCommandError(purpose, this.name, result.code, tail(result.stderr || result.stdout));
      }
      return result;
    } catch (error) {
      if (error instanceof DeployError) throw error;
      throw new RemoteCommandError(purpose, this.name, -1, errorMessage(error));
    } finally {
      clearTimeout(timer);
    }
  }

  async upload(purpose: string, localPath: string, remotePath: string): Promise<void> {
    try {
      await this.ssh.putFile(localPath, remotePath);
    } catch (error) {
      throw new RemoteCommandError(purpose, this.name, -1, errorMessage(error));
    }
  }

  async close(): Promise<void> {
    this.ssh.dispose();
  }
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-STDERR_TAIL_LINES).join('\n');
}
