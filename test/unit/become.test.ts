import { describe, expect, it } from 'vitest';
import { BecomeRemoteHost, becomeCommand, becomeFactory } from '../../src/remote/become-remote-host.js';
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
    expect(becomeCommand('www-data', sh`kill -HUP ${"12'3"}`).text).toBe(`sudo -n -u www-data -- /bin/sh -c 'kill -HUP '\\''12'\\''\\'\\'''\\''3'\\'''`);
  });

  it('wraps every exec of the host', async () => {
    const host = new ScriptedHost(() => ok());
    await new BecomeRemoteHost(host, 'www-data', 'deploy').exec('read', sh`cat /srv/app/current/REVISION`);
    expect(host.commands).toEqual([`sudo -n -u www-data -- /bin/sh -c 'cat /srv/app/current/REVISION'`]);
  });

  it('stops before any change when sudo asks for a password, printing the sudoers line to add', async () => {
    const host = new ScriptedHost(() => ({ stdout: 'sudo: a password is required\n', stderr: '', code: 1 }));
    const connect = becomeFactory(async () => host, 'www-data');
    await expect(connect({ user: 'deploy', host: 'web1', port: 22, label: 'deploy@web1:22' })).rejects.toThrow(
      /become: www-data: 'deploy' cannot run commands as www-data through sudo without a password \(sudo: a password is required\)\. Add this line .*: deploy ALL=\(www-data\) NOPASSWD: ALL/,
    );
    expect(host.closed).toBe(true);
  });

  it('accepts sudo that answers as the user, and skips sudo for a host reached as that user', async () => {
    const host = new ScriptedHost(() => ok('www-data\n'));
    await expect(becomeFactory(async () => host, 'www-data')({ user: 'deploy', host: 'web1', port: 22, label: 'x' })).resolves.toBeInstanceOf(BecomeRemoteHost);
    const direct = new ScriptedHost(() => ok());
    await expect(becomeFactory(async () => direct, 'www-data')({ user: 'www-data', host: 'web1', port: 22, label: 'y' })).resolves.toBe(direct);
    expect(direct.commands).toEqual([]);
  });

  it('uploads into a private temporary directory, copies into place as the user, then removes the copy', async () => {
    const host = new ScriptedHost((command) => ok(command.startsWith('d=$(mktemp') ? '/tmp/tmp.Ab12\n' : ''));
    await new BecomeRemoteHost(host, 'www-data', 'deploy').upload('upload', '/local/r.tar.gz', '/srv/app/releases/.upload-v2.tar.gz');
    expect(host.uploads).toEqual(['/local/r.tar.gz -> /tmp/tmp.Ab12/upload']);
    expect(host.commands).toEqual([
      'd=$(mktemp -d) && chmod 711 "$d" && echo "$d"',
      'chmod 644 /tmp/tmp.Ab12/upload',
      `sudo -n -u www-data -- /bin/sh -c 'cat /tmp/tmp.Ab12/upload > /srv/app/releases/.upload-v2.tar.gz'`,
      'rm -rf /tmp/tmp.Ab12',
    ]);
  });
});
