import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { KILL_AFTER_SECONDS, exitStatusOf, remoteCommandLine, stoppedByDeadline } from '../../src/remote/remote-command.js';
import { raw, sh } from '../../src/remote/shell-quote.js';

/** Runs text the way sshd does: the login shell's `-c`. */
function viaLoginShell(shell: string, text: string, input = ''): { stdout: string; code: number } {
  const result = spawnSync(shell, ['-c', text], { input, encoding: 'utf8', timeout: 30_000 });
  return { stdout: result.stdout, code: exitStatusOf(result.status, result.signal) };
}

const TRICKY = [
  sh`printf '%s\n' ${"it's"} ${'a\\b'} ${'$HOME'} ${'`id`'}`,
  raw('for w in one two; do\n  echo "line $w"\ndone\necho "tab\there" \\\n  continued'),
  raw("x='single'; y=\"dou\\\"ble\"; echo \"$x $y\" !bang"),
  raw('read first; echo "got $first"'),
  raw('echo out; echo err >&2; exit 7'),
];

describe('remoteCommandLine', () => {
  it('runs the command under timeout -k with the deadline, under sh, as one quoted word', () => {
    const line = remoteCommandLine(raw('echo hi'), 600);
    expect(line).toBe(`timeout -k ${KILL_AFTER_SECONDS} 600 sh -c 'eval "$(printf %s ZWNobyBoaQ== | base64 -d)"'`);
    expect(remoteCommandLine(raw('true'), 2.25)).toMatch(/^timeout -k 5 2\.3 sh -c /);
    expect(remoteCommandLine(raw('true'), 0)).toMatch(/^timeout -k 5 0\.1 sh -c /);
  });

  it('holds no character a login shell (fish, csh, zsh) would read inside single quotes', () => {
    for (const command of TRICKY) {
      const quoted = /sh -c '(.*)'$/s.exec(remoteCommandLine(command, 10))?.[1] ?? '';
      // fish reads \\ and \' inside single quotes; csh rejects a newline and expands ! there.
      expect(quoted).toMatch(/^[A-Za-z0-9+/= "$()|%-]+$/);
    }
  });

  it.each(['/bin/sh', '/bin/bash', '/bin/dash'])('gives the same output and exit status as sh itself through %s', (shell) => {
    for (const command of TRICKY) {
      const direct = viaLoginShell('/bin/sh', command.text, 'first line\n');
      const wrapped = viaLoginShell(shell, remoteCommandLine(command, 10), 'first line\n');
      expect(wrapped, command.text).toEqual(direct);
    }
  });

  it('stops a command at its deadline, children included, with timeout\'s 124', () => {
    const marker = `sleep 301.${process.pid}`;
    const started = Date.now();
    const result = viaLoginShell('/bin/bash', remoteCommandLine(raw(`${marker} & ${marker}; wait`), 0.5));
    const seconds = (Date.now() - started) / 1000;
    expect(result.code).toBe(124);
    expect(seconds).toBeLessThan(3);
    expect(stoppedByDeadline(124, seconds, 0.5)).toBe(true);
    expect(spawnSync('pgrep', ['-f', marker]).status, 'no sleep of the command is left').toBe(1);
  });

  it('kills a command that ignores TERM after the grace period (137)', () => {
    const marker = `sleep 302.${process.pid}`;
    const started = Date.now();
    const result = viaLoginShell('/bin/bash', remoteCommandLine(raw(`trap '' TERM; ${marker}`), 0.5));
    const seconds = (Date.now() - started) / 1000;
    expect(result.code).toBe(137);
    expect(seconds).toBeGreaterThanOrEqual(KILL_AFTER_SECONDS);
    expect(seconds).toBeLessThan(KILL_AFTER_SECONDS + 3);
    expect(spawnSync('pgrep', ['-f', marker]).status, 'no sleep of the command is left').toBe(1);
  }, 15_000);
});

describe('stoppedByDeadline', () => {
  it.each([
    [124, 10, 10, true],
    [137, 15, 10, true],
    [124, 2, 10, false], // the command's own exit 124, long before its deadline
    [1, 20, 10, false],
    [0, 20, 10, false],
  ])('exit %i after %is with deadline %is: %s', (code, elapsed, deadline, expected) => {
    expect(stoppedByDeadline(code, elapsed, deadline)).toBe(expected);
  });
});

describe('exitStatusOf', () => {
  it('keeps a code and turns a signal into 128 + its number, as a shell does', () => {
    expect(exitStatusOf(3, null)).toBe(3);
    expect(exitStatusOf(null, 'KILL')).toBe(137);
    expect(exitStatusOf(null, 'SIGTERM')).toBe(143);
    expect(exitStatusOf(null, null)).toBe(-1);
  });
});
