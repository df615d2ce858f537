import { DeployError } from '../errors.js';
import type { ExecOptions, ExecResult, RemoteHost } from './remote-host.js';
import type { ServerDriver, ServerProcess } from '../servers/server-driver.js';
import { sh, type ShellFragment } from './shell-quote.js';

/** The sudoers line a deploy user needs for `become: <user>`. */
export function sudoersLine(sshUser: string, become: string): string {
  return `${sshUser} ALL=(${become}) NOPASSWD: ALL`;
}

/**
 * A command run as `user` through `sudo -n` (never a password prompt: a missing rule fails at
 * once), from `/`: the SSH user's home is no place for the app's user (find, for one, fails
 * when it cannot return to a working directory it may not read).
 */
export function becomeCommand(user: string, command: ShellFragment): ShellFragment {
  return sh`cd / && sudo -n -u ${user} -- /bin/sh -c ${command.text}`;
}

/**
 * A host whose commands run as the app's user (`become`, as in Ansible): the SSH user logs in,
 * every command goes through `sudo -n -u <user>`, so process reads, signals and the app's own
 * Python run as the user gunicorn runs as. Only the server driver gets it (asUser below): the
 * release files, the install and migrate commands stay the SSH user's.
 */
export class BecomeRemoteHost implements RemoteHost {
  private verified?: Promise<void>;

  constructor(
    private readonly host: RemoteHost,
    private readonly user: string,
  ) {}

  get name(): string {
    return this.host.name;
  }

  /** Checks, once and before any command, that sudo lets the SSH user act as `user` without a password. */
  private verify(): Promise<void> {
    this.verified ??= (async () => {
      const probe = await this.host.exec(`sudo to ${this.user}`, sh`${becomeCommand(this.user, sh`id -un`)} 2>&1`, { allowFailure: true });
      if (probe.code === 0 && probe.stdout.trim() === this.user) return;
      const said = probe.stdout.trim().split('\n').slice(-2).join(' ');
      const sshUser = this.host.name.split('@')[0] ?? '<ssh user>';
      const { what, fix } = sudoProblem(probe.stdout, probe.code, sshUser, this.user);
      throw new DeployError(`become: ${this.user}: ${what} (${said || `exit ${probe.code}`}). Nothing was changed. ${fix}`, this.host.name);
    })();
    // A failed check (the connection, say) is tried again at the next command.
    this.verified.catch(() => (this.verified = undefined));
    return this.verified;
  }

  async exec(purpose: string, command: ShellFragment, options?: ExecOptions): Promise<ExecResult> {
    await this.verify();
    return this.host.exec(purpose, becomeCommand(this.user, command), options);
  }

  upload(purpose: string, localPath: string, remotePath: string): Promise<void> {
    return this.host.upload(purpose, localPath, remotePath);
  }

  /** A unix socket reached through sshd is opened by sshd as the SSH user (sudo plays no part). */
  get socketRequest(): RemoteHost['socketRequest'] {
    return this.host.socketRequest?.bind(this.host);
  }

  close(): Promise<void> {
    return this.host.close();
  }
}

/**
 * The driver, with every host it is handed wrapped so that its commands run as `user` (each
 * host's wrapper kept, so sudo is checked once per connection). No user: the driver itself.
 */
export function asUser<P extends ServerProcess>(driver: ServerDriver<P>, user: string | undefined): ServerDriver<P> {
  if (!user) return driver;
  const wrapped = new WeakMap<RemoteHost, RemoteHost>();
  const as = (host: RemoteHost): RemoteHost => {
    if (host.name.startsWith(`${user}@`)) return host;
    let become = wrapped.get(host);
    if (!become) wrapped.set(host, (become = new BecomeRemoteHost(host, user)));
    return become;
  };
  return {
    inspect: (host) => driver.inspect(as(host)),
    preflight: (host, server, releaseDir) => driver.preflight(as(host), server, releaseDir),
    reload: (host, server, log, signal, progress) => driver.reload(as(host), server, log, signal, progress),
    settle: (host, pointCurrent, log) => driver.settle(as(host), pointCurrent, log),
  };
}

/** What sudo's answer to `sudo -n -u <user> id -un` says went wrong, and the way out (the sudoers line, after what must come first). */
function sudoProblem(output: string, code: number, sshUser: string, user: string): { what: string; fix: string } {
  const line = `Add this line with visudo -f /etc/sudoers.d/graceful-deploy on the host: ${sudoersLine(sshUser, user)}`;
  if (code === 127 || /sudo: (command )?not found/.test(output)) return { what: 'sudo is not installed on the host', fix: `Install it (apt-get install sudo), then: ${line}` };
  if (/unknown user/.test(output)) return { what: `the host has no user ${user}`, fix: 'Set become to the user the app server runs as (ps -o user= -p <master pid>).' };
  const what = `'${sshUser}' cannot run commands as ${user} through sudo without a password`;
  if (/must have a tty|requiretty/.test(output)) return { what, fix: `Its sudoers has requiretty: add the line Defaults:${sshUser} !requiretty, and: ${line}` };
  return { what, fix: line };
}
