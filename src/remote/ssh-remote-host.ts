import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Channel, ClientChannel, SFTPWrapper } from 'ssh2';
import type { HostTarget, SshSettings } from '../config/settings.js';
import { DeployError, DiskFullError, HostUnreachableError, RemoteCommandError, errorMessage } from '../errors.js';
import { diskSpaceCommand, parseDiskSpace } from './disk-space.js';
import { KILL_AFTER_SECONDS, exitStatusOf, remoteCommandLine, stoppedByDeadline, tail } from './remote-command.js';
import type { ExecOptions, ExecResult, RemoteHost } from './remote-host.js';
import type { ShellFragment } from './shell-quote.js';
import { sshConnector, type SshConnector } from './ssh-connector.js';
import { reconnect, type SshLink } from './ssh-link.js';

/** Extra seconds the runner waits past the host's own kill before it stops waiting for an answer. */
const ANSWER_GRACE_SECONDS = 5;

/** Opens one verified SSH connection per host; used by main.ts, replaced by stubs in unit tests. */
export type RemoteHostFactory = (target: HostTarget) => Promise<RemoteHost>;

/**
 * `log` hears about lost and re-opened connections, prefixed with the host by the caller.
 * `connect` opens each connection (through the jump host, if any) on the first command and on
 * every reconnect; pass the run's one connector when others connect too.
 */
export function sshRemoteHostFactory(
  settings: SshSettings,
  log: (host: string, line: string) => void = () => undefined,
  connect: SshConnector = sshConnector(settings),
): RemoteHostFactory {
  return async (target) => {
    const open = () => connect(target);
    const host = new SshRemoteHost(target.label, await open(), open, settings, (line) => log(target.label, line));
    if (settings.jump) log(target.label, `connected through the jump host ${settings.jump.target.label}`);
    return host;
  };
}

class SshRemoteHost implements RemoteHost {
  /** Set once reconnecting failed: later commands fail at once instead of waiting again. */
  private unreachable: HostUnreachableError | undefined;
  private reconnecting: Promise<SshLink> | undefined;

  constructor(
    readonly name: string,
    private link: SshLink,
    private readonly open: () => Promise<SshLink>,
    private readonly settings: SshSettings,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Runs the command under the host's `timeout` with this wait's deadline; the runner waits a
   * little longer for the answer, so normally the host reports the timeout itself. A command
   * on a connection that dies fails as soon as keepalive notices, not at its deadline.
   */
  async exec(purpose: string, command: ShellFragment, options: ExecOptions = {}): Promise<ExecResult> {
    const deadline = options.timeoutSeconds ?? this.settings.commandTimeoutSeconds;
    const link = await this.connected();
    const started = Date.now();
    let channel: ClientChannel | undefined;
    const limit = deadline + KILL_AFTER_SECONDS + ANSWER_GRACE_SECONDS;
    const stop = () => channel?.close();
    try {
      const response = await withTimeout(
        link.ssh.execCommand(remoteCommandLine(command, deadline), {
          stdin: options.stdin,
          onChannel: (opened) => {
            channel = opened;
          },
        }),
        limit,
        stop,
        () => new RemoteCommandError(purpose, this.name, -1, `no answer within ${limit}s`),
      );
      // A channel closed by a dying connection has no exit status.
      if (response.code === null && link.lost) throw this.lostDuring(purpose, link);
      const result = { stdout: response.stdout, stderr: response.stderr, code: exitStatusOf(response.code, response.signal) };
      if (stoppedByDeadline(result.code, (Date.now() - started) / 1000, deadline)) {
        const output = tail(result.stderr || result.stdout);
        throw new RemoteCommandError(purpose, this.name, result.code, `did not finish within ${deadline}s and was stopped on the host${output ? `; last output:\n${output}` : ''}`);
      }
      if (result.code !== 0 && !options.allowFailure) {
        throw new RemoteCommandError(purpose, this.name, result.code, tail(result.stderr || result.stdout));
      }
      return result;
    } catch (error) {
      if (error instanceof DeployError) throw error;
      if (link.lost) throw this.lostDuring(purpose, link);
      throw new RemoteCommandError(purpose, this.name, -1, errorMessage(error));
    }
  }

  /** SFTP upload, bounded by command-timeout; a failure on a full disk says so. */
  async upload(purpose: string, localPath: string, remotePath: string): Promise<void> {
    const link = await this.connected();
    const limit = this.settings.commandTimeoutSeconds;
    let sftp: SFTPWrapper | undefined;
    try {
      await withTimeout(
        (async () => {
          sftp = await link.ssh.requestSFTP();
          await link.ssh.putFile(localPath, remotePath, sftp);
        })(),
        limit,
        () => sftp?.end(),
        () => new RemoteCommandError(purpose, this.name, -1, `not finished within ${limit}s (command-timeout)`),
      );
    } catch (error) {
      if (link.lost) throw this.lostDuring(purpose, link);
      await this.refuseIfDiskFull(localPath, posix.dirname(remotePath));
      if (error instanceof DeployError) throw error;
      throw new RemoteCommandError(purpose, this.name, -1, errorMessage(error));
    } finally {
      sftp?.end();
    }
  }

  async socketRequest(purpose: string, socketPath: string, request: string, timeoutSeconds: number): Promise<string> {
    const link = await this.connected();
    let channel: Channel | undefined;
    try {
      return await withTimeout(
        (async () => {
          const opened = await link.ssh.forwardOutStreamLocal(socketPath);
          channel = opened;
          return new Promise<string>((resolve, reject) => {
            const chunks: Buffer[] = [];
            opened.on('data', (chunk: Buffer) => chunks.push(chunk));
            opened.on('error', reject);
            // The answer ends when the socket closes its side (HAProxy's CLI does after one
            // command): sshd passes that on as EOF. No EOF is sent first: a half-closed CLI
            // connection may be dropped unanswered; the channel is closed once answered.
            const done = () => {
              resolve(Buffer.concat(chunks).toString('utf8'));
              opened.close();
            };
            opened.on('end', done);
            opened.on('close', done);
            opened.write(request);
          });
        })(),
        timeoutSeconds,
        () => channel?.close(),
        () => new RemoteCommandError(purpose, this.name, -1, `no answer from ${socketPath} within ${timeoutSeconds}s`),
      );
    } catch (error) {
      if (error instanceof DeployError) throw error;
      if (link.lost) throw this.lostDuring(purpose, link);
      throw new RemoteCommandError(purpose, this.name, -1, `${socketPath}: ${errorMessage(error)}`);
    }
  }

  async close(): Promise<void> {
    this.link.close();
  }

  /** The open connection, or a new one when it was lost (host key verified again). */
  private async connected(): Promise<SshLink> {
    if (this.unreachable) throw this.unreachable;
    const why = this.link.lost;
    if (why === undefined) return this.link;
    // Commands issued together wait for one reconnect, not one each.
    this.reconnecting ??= this.reopen(why).finally(() => (this.reconnecting = undefined));
    return this.reconnecting;
  }

  private async reopen(why: string): Promise<SshLink> {
    this.log(`SSH connection lost (${why}); reconnecting`);
    // Disposed, so a jump host counts it among the connections it no longer carries.
    this.link.close();
    try {
      this.link = await reconnect(this.name, why, this.open);
    } catch (error) {
      if (error instanceof HostUnreachableError) this.unreachable = error;
      throw error;
    }
    this.log('reconnected, host key verified');
    return this.link;
  }

  private lostDuring(purpose: string, link: SshLink): HostUnreachableError {
    return new HostUnreachableError(`lost the SSH connection during ${purpose} (${link.lost ?? 'closed'}); it may or may not have finished on the host`, this.name);
  }

  /** SFTP reports a full disk only as "Failure": ask df, so the error names the full filesystem. */
  private async refuseIfDiskFull(localPath: string, remoteDir: string): Promise<void> {
    const needed = await stat(localPath).then((info) => info.size, () => 0);
    const answer = await this.exec('check free disk space', diskSpaceCommand(remoteDir), { allowFailure: true, timeoutSeconds: 30 }).catch(() => undefined);
    const space = answer && parseDiskSpace(answer.stdout);
    if (space && space.availableBytes < needed) throw new DiskFullError(this.name, remoteDir, space.mountedOn, space.availableBytes, needed);
  }
}

/** Races `work` against a timer; on expiry `stop` ends the work's channel and `error` is thrown. */
async function withTimeout<T>(work: Promise<T>, seconds: number, stop: () => void, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      stop();
      reject(error());
    }, seconds * 1000);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

