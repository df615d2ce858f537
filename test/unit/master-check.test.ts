import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MasterCheckError } from '../../src/errors.js';
import { verifyMaster } from '../../src/servers/gunicorn/master-check.js';
import { inspectPidfileCommand, parsePidfileFacts, type PidfileFacts, type ProcessFacts } from '../../src/servers/gunicorn/process-facts.js';
import { signalCommand } from '../../src/servers/gunicorn/gunicorn-commands.js';

function proc(overrides: Partial<ProcessFacts>): ProcessFacts {
  return {
    pid: 100,
    ppid: 1,
    pgid: 99,
    sid: 99,
    startTime: '12345',
    exe: '/usr/bin/python3.11',
    cwd: '/srv/app/releases/v1',
    argv: ['/usr/bin/python3', '/usr/bin/gunicorn', '-c', 'gunicorn.conf.py', 'app:application'],
    children: [101, 102],
    booted: [101, 102],
    ...overrides,
  };
}

const facts = (overrides: Partial<PidfileFacts>): PidfileFacts => ({ pid: 100, master: proc({}), parent: proc({ pid: 1, argv: ['/sbin/init'] }), appDirReal: '/srv/app', ...overrides });
const verify = (value: PidfileFacts) => verifyMaster(value, { pidfile: '/srv/app/run/gunicorn.pid' }, 'web1');

describe('verifyMaster', () => {
  it('accepts a daemonized master of this app', () => {
    expect(verify(facts({}))).toMatchObject({ pid: 100, workers: [101, 102], daemonized: true, python: '/usr/bin/python3.11' });
  });

  it('reads the app spec from a setproctitle title and sees a foreground master', () => {
    const master = verify(facts({ master: proc({ argv: ['gunicorn: master [app:application]'], ppid: 50, pgid: 100, sid: 50 }) }));
    expect(master.titledApp).toBe('app:application');
    expect(master.daemonized).toBe(false);
  });

  it.each<[string, Partial<PidfileFacts>, RegExp]>([
    ['no pidfile', { pid: undefined, master: undefined }, /missing or empty/],
    ['a dead pid', { master: undefined }, /not running/],
    ['a reused pid', { master: proc({ argv: ['/usr/sbin/nginx'] }) }, /not gunicorn/],
    ['a worker', { parent: proc({ pid: 7 }) }, /child of gunicorn pid 7/],
    ['a titled worker', { master: proc({ argv: ['gunicorn: worker [app:application]'] }) }, /worker, not the master/],
    ['another app', { master: proc({ cwd: '/srv/other/releases/v1' }) }, /not this app's master/],
    ['an upgrade in progress', { upgrade: proc({ pid: 200 }) }, /upgrade is in progress/],
    ['unreadable /proc', { master: proc({ exe: '', cwd: '' }) }, /cannot read/],
    ['no workers', { master: proc({ children: [] }) }, /no workers/],
  ])('refuses %s', (_name, overrides, message) => {
    expect(() => verify(facts(overrides))).toThrow(MasterCheckError);
    expect(() => verify(facts(overrides))).toThrow(message);
  });

  it('takes a master with no worker only when settle knows it as one a run retired with WINCH (a HUP revives it)', () => {
    const retired = facts({ master: proc({ children: [] }) });
    expect(() => verify(retired)).toThrow(/has no workers/);
    expect(verifyMaster(retired, { pidfile: '/srv/app/run/gunicorn.pid' }, 'web1', { retired: true })).toMatchObject({ pid: 100, workers: [] });
  });
});

describe('inspectPidfileCommand on a real process tree', () => {
  it('describes the pidfile process, its parent and its children', async () => {
    const base = mkdtempSync(path.join(tmpdir(), 'gd-proc-'));
    try {
      mkdirSync(path.join(base, 'releases/v1'), { recursive: true });
      symlinkSync('releases/v1', path.join(base, 'current'));
      const child = spawn('/bin/sh', ['-c', 'sleep 30 & sleep 30 & wait'], { cwd: path.join(base, 'current'), stdio: 'ignore' });
      await new Promise((resolve) => setTimeout(resolve, 300));
      writeFileSync(path.join(base, 'pid'), `${child.pid}\n`);
      const out = spawnSync('/bin/sh', ['-c', inspectPidfileCommand(path.join(base, 'pid'), base).text], { encoding: 'utf8' });
      const parsed = parsePidfileFacts(out.stdout);
      child.kill('SIGKILL');
      expect(parsed.pid).toBe(child.pid);
      expect(parsed.master?.argv).toEqual(['/bin/sh', '-c', 'sleep 30 & sleep 30 & wait']);
      expect(parsed.master?.cwd).toBe(path.join(base, 'releases/v1'));
      expect(parsed.master?.children).toHaveLength(2);
      expect(parsed.master?.ppid).toBe(process.pid);
      expect(parsed.parent?.pid).toBe(process.pid);
      expect(parsed.master?.startTime).toMatch(/^\d+$/);
      expect(parsed.appDirReal).toBe(base);
      expect(parsed.upgrade).toBeUndefined();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('signals only the process that started at the verified time', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const wrong = spawnSync('/bin/sh', ['-c', signalCommand(child.pid!, '1', 'TERM').text], { encoding: 'utf8' });
    expect(wrong.status).toBe(3);
    expect(wrong.stderr).toContain('no longer the verified');
    const pidfile = path.join(mkdtempSync(path.join(tmpdir(), 'gd-sig-')), 'pid');
    writeFileSync(pidfile, String(child.pid));
    const start = parsePidfileFacts(spawnSync('/bin/sh', ['-c', inspectPidfileCommand(pidfile, '/tmp').text], { encoding: 'utf8' }).stdout).master?.startTime ?? '';
    rmSync(path.dirname(pidfile), { recursive: true, force: true });
    const exited = new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    expect(spawnSync('/bin/sh', ['-c', signalCommand(child.pid!, start, 'TERM').text]).status).toBe(0);
    expect(await exited).toBe('SIGTERM');
  });
});
