import { DeployError, RemoteCommandError } from '../errors.js';
import type { ExecOptions, ExecResult, RemoteHost } from './remote-host.js';
import type { RemoteHostFactory } from './ssh-remote-host.js';
import { sh, type ShellFragment } from './shell-quote.js';

/** The sudoers line a deploy user needs for `become: <user>`. */
export function sudoersLine(sshUser: string, become: string): string {
  return `${sshUser} ALL=(${become}) NOPASSWD: ALL`;
}

/** A command run as `user` through `sudo -n` (never a password prompt: a missing rule fails at once). */
export function becomeCommand(user: string, command: ShellFragment): ShellFragment {
  return sh`sudo -n -u ${user} -- /bin/sh -c ${command.text}`;
}

/**
 * A host whose commands run as the app's user (`become`, as in Ansible): the SSH user logs in,
 * every command goes through `sudo -n -u <user>`, so process reads, signals, app commands and
 * the files of releases belong to that user. Uploads land in a private temporary directory of
 * the SSH user first and are copied into place as the app's user.
 */
export class BecomeRemoteHost implements RemoteHost {
  constructor(
    private readonly host: RemoteHost,
    private readonly user: string,
    /** The SSH user, for the sudoers line in errors. */
    private readonly sshUser: string,
  ) {}

  get name(): string {
    return this.host.name;
  }

  /** Checks once, before anything changes, that sudo lets the SSH user act as `user` without a password. */
  async verify(): Promise<void> {
    const probe = await this.host.exec(`sudo to ${this.user}`, sh`${becomeCommand(this.user, sh`id -un`)} 2>&1`, { allowFailure: true });
    if (probe.code === 0 && probe.stdout.trim() === this.user) return;
    const said = probe.stdout.trim().split('\n').slice(-2).join(' ');
    throw new DeployError(
      `become: ${this.user}: '${this.sshUser}' cannot run commands as ${this.user} through sudo without a password (${said || `exit ${probe.code}`}). ` +
        `Add this line with visudo -f /etc/sudoers.d/graceful-deploy on the host: ${sudoersLine(this.sshUser, this.user)}`,
      this.host.name,
    );
  }

  exec(purpose: string, command: ShellFragment, options?: ExecOptions): Promise<ExecResult> {
    return this.host.exec(purpose, becomeCommand(this.user, command), options);
  }

  async upload(purpose: string, localPath: string, remotePath: string): Promise<void> {
    const made = await this.host.exec(`${purpose}: temporary directory`, sh`d=$(mktemp -d) && chmod 711 "$d" && echo "$d"`);
    const directory = made.stdout.trim();
    if (!directory.startsWith('/')) throw new RemoteCommandError(`${purpose}: temporary directory`, this.host.name, -1, `mktemp printed '${directory}'`);
    const staged = `${directory}/upload`;
    try {
      await this.host.upload(purpose, localPath, staged);
      await this.host.exec(`${purpose}: let ${this.user} read it`, sh`chmod 644 ${staged}`);
      await this.exec(`${purpose}: copy into place as ${this.user}`, sh`cat ${staged} > ${remotePath}`);
    } finally {
      await this.host.exec(`${purpose}: remove the temporary copy`, sh`rm -rf ${directory}`, { allowFailure: true }).catch(() => undefined);
    }
  }

  close(): Promise<void> {
    return this.host.close();
  }
}

/**
 * Connects as the factory does, then, with `become`, wraps each app host so that its commands
 * run as that user (verified before anything changes). A host reached as that very user needs no sudo.
 */
export function becomeFactory(connect: RemoteHostFactory, user: string | undefined): RemoteHostFactory {
  if (!user) return connect;
  return async (target) => {
    const host = await connect(target);
    if (target.user === user) return host;
    const become = new BecomeRemoteHost(host, user, target.user);
    try {
      await become.verify();
    } catch (error) {
      await host.close();
      throw error;
    }
    return become;
  };
}
