import { describe, expect, it } from 'vitest';
import { BecomeRemoteHost, asUser, becomeCommand } from '../../src/remote/become-remote-host.js';
import type { ServerDriver } from '../../src/servers/server-driver.js';
import type { ExecOptions, ExecResult, RemoteHost } from '../../src/remote/remote-host.js';
import { sh, type ShellFragment } from '../../src/remote/shell-quote.js';

/** A host that records what it was asked and answers from a script (no SSH: the wrapper's logic only). */
class ScriptedHost implements RemoteHost {
  readonly name = 'deploy@web1:22';
  readonly commands: string[] = [];
  readonly uploads: string[] = [];
  closed = false;
  constructor(private readonly answer: (command: string) => ExecResult) {}
  async exec(_purpose: string, command: ShellFragment, options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(command.text);
    const result = this.answer(command.text);
    if (result.code !== 0 && !options?.allowFailure) throw new Error(`exit ${result.code}`);
    return result;
  }
  async upload(_purpose: string, localPath: string, remotePath: string): Promise<void> {
    this.uploads.push(`${localPath} -> ${remotePath}`);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const ok = (stdout = ''): ExecResult => ({ stdout, stderr: '', code: 0 });

describe('become: commands as the app user through sudo', () => {
  it('runs the whole command, quoted once, under sudo -n (never a password prompt)', () => {
    expect(becomeCommand('www-data', sh`kill -HUP ${"12'3"}`).text).toBe(`cd / && sudo -n -u www-data -- /bin/sh -c 'kill -HUP '\\''12'\\''\\'\\'''\\''3'\\'''`);
  });

  it('checks sudo once, then wraps every exec of the host', async () => {
    const host = new ScriptedHost((command) => ok(command.includes('id -un') ? 'www-data\n' : ''));
    const become = new BecomeRemoteHost(host, 'www-data');
    await become.exec('read', sh`cat /srv/app/current/REVISION`);
    await become.exec('signal', sh`kill -HUP 42`);
    expect(host.commands).toEqual([
      `cd / && sudo -n -u www-data -- /bin/sh -c 'id -un' 2>&1`,
      `cd / && sudo -n -u www-data -- /bin/sh -c 'cat /srv/app/current/REVISION'`,
      `cd / && sudo -n -u www-data -- /bin/sh -c 'kill -HUP 42'`,
    ]);
  });

  it('stops at the first command when sudo asks for a password, running nothing else and printing the sudoers line to add', async () => {
    const host = new ScriptedHost(() => ({ stdout: 'sudo: a password is required\n', stderr: '', code: 1 }));
    const driver = asUser(recordingDriver(), 'www-data');
    await expect(driver.inspect(host)).rejects.toThrow(
      /become: www-data: 'deploy' cannot run commands as www-data through sudo without a password \(sudo: a password is required\)\. Nothing was changed\. Add this line .*: deploy ALL=\(www-data\) NOPASSWD: ALL/,
    );
    expect(host.commands).toHaveLength(1);
  });

  it.each([
    ['sudo is not installed', { stdout: 'sh: 1: sudo: not found\n', code: 127 }, /sudo is not installed on the host[\s\S]*apt-get install sudo[\s\S]*NOPASSWD/],
    ['the app user does not exist', { stdout: 'sudo: unknown user www-data\nsudo: error initializing audit plugin sudoers_audit\n', code: 1 }, /the host has no user www-data[\s\S]*become/],
    ['sudo requires a tty', { stdout: 'sudo: sorry, you must have a tty to run sudo\n', code: 1 }, /Defaults:deploy !requiretty/],
  ])('names what is wrong when %s, not only the sudoers line', async (_why, answer, expected) => {
    const host = new ScriptedHost(() => ({ stderr: '', ...answer }));
    const driver = asUser(recordingDriver(), 'www-data');
    const error = await driver.inspect(host).then(() => undefined, (caught: unknown) => caught as Error);
    expect(error?.message).toMatch(/Nothing was changed/);
    expect(error?.message).toMatch(expected);
  });

  it('hands the driver the same wrapper for a host each time, and the host itself when it is reached as that user', async () => {
    const seen: RemoteHost[] = [];
    const driver = asUser(recordingDriver(seen), 'www-data');
    const host = new ScriptedHost(() => ok('www-data\n'));
    await driver.inspect(host);
    await driver.inspect(host);
    expect(seen[0]).toBeInstanceOf(BecomeRemoteHost);
    expect(seen[1]).toBe(seen[0]);
    const direct = Object.assign(new ScriptedHost(() => ok()), { name: 'www-data@web1:22' });
    await driver.inspect(direct);
    expect(seen[2]).toBe(direct);
    expect(asUser(driver, undefined)).toBe(driver);
  });
});

/** A driver whose inspect runs one command on the host it is given and records that host. */
function recordingDriver(seen: RemoteHost[] = []): ServerDriver {
  const unused = () => Promise.reject(new Error('not used'));
  return {
    inspect: async (host) => {
      seen.push(host);
      await host.exec('inspect', sh`true`);
      return { pid: 1, workers: [], python: '/usr/bin/python3' };
    },
    preflight: unused,
    reload: unused,
    settle: unused,
  };
}
