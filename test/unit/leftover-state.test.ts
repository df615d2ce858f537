import { describe, expect, it } from 'vitest';
import { parseSwitchLog, recogniseLeftover, releaseAt, type LeftoverFacts } from '../../src/servers/gunicorn/leftover-state.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { winchCommand, winchRecordOf } from '../../src/servers/gunicorn/gunicorn-commands.js';
import { agesCommand, parseClock, stalePidfileRemoval, winchedAt } from '../../src/servers/gunicorn/settle.js';
import { postLockDecision, postTargets, readMainRecord } from '../../src/post-step.js';
import { tempLinksOf } from '../../src/release/leftover-release.js';

/** v1 deployed at t=100 (from v0), v2 switched in at t=200 by a run that then died. */
const switches = parseSwitchLog('100.5 releases/v0 releases/v1\n200.25 releases/v1 releases/v2\n');
const workers = (...startedAt: number[]) => startedAt.map((at, index) => ({ pid: 10 + index, startedAt: at }));
const facts = (extra: Partial<LeftoverFacts>): LeftoverFacts => ({ current: 'v2', switches, master: { pid: 1, workers: workers(150, 160) }, ...extra });

describe('which release a worker serves (the switch log and its start time)', () => {
  it('is what current named when the worker started', () => {
    expect(switches).toEqual([
      { at: 100.5, from: 'v0', to: 'v1' },
      { at: 200.25, from: 'v1', to: 'v2' },
    ]);
    expect(releaseAt(50, switches, 'v2')).toBe('v0');
    expect(releaseAt(150, switches, 'v2')).toBe('v1');
    expect(releaseAt(200.3, switches, 'v2')).toBe('v2');
    expect(releaseAt(1, [], 'v2')).toBe('v2');
    expect(parseSwitchLog('9 - releases/v1\ngarbage\n')).toEqual([{ at: 9, from: undefined, to: 'v1' }]);
  });

  it("reads the host's boot epoch from its clock and uptime", () => {
    expect(parseClock('clock=1000.5 400.25 100\ncurrent=releases/v2\n')).toEqual({ bootEpoch: 600.25, ticks: 100, current: 'v2' });
  });
});

describe('recognising what a dead run left on a gunicorn host', () => {
  it('consistent: every worker started after the last switch', () => {
    expect(recogniseLeftover(facts({ master: { pid: 1, workers: workers(210, 220) } }))).toEqual({ kind: 'consistent', serves: 'v2' });
  });

  it('current ahead: killed after the switch, before the reload', () => {
    expect(recogniseLeftover(facts({}))).toEqual({ kind: 'current-ahead', serves: 'v1', current: 'v2' });
  });

  it('mixed generations after an interrupted roll: keeps the release that served before', () => {
    expect(recogniseLeftover(facts({ master: { pid: 1, workers: workers(210, 150) } }))).toEqual({ kind: 'mixed-generations', serves: ['v1', 'v2'], keep: 'v1' });
  });

  it('two masters after USR2: keeps the old generation, stops the new master', () => {
    const state = recogniseLeftover(facts({ upgrade: { pid: 2, workers: workers(210) } }));
    expect(state).toEqual({ kind: 'two-masters', keep: 'v1', stop: 2, stopServes: ['v2'] });
    // A new master still booting (no workers yet) goes too.
    expect(recogniseLeftover(facts({ upgrade: { pid: 2, workers: [] } }))).toMatchObject({ kind: 'two-masters', keep: 'v1', stopServes: [] });
  });

  it('an idle old master after WINCH: the new one is the only one serving, so it is committed once it passes the gate (else the old one goes back to v1)', () => {
    expect(recogniseLeftover(facts({ master: { pid: 1, workers: [] }, upgrade: { pid: 2, workers: workers(210, 211) } }))).toEqual({ kind: 'idle-old-master', keep: 'v2', back: 'v1', idle: 1, serving: 2 });
  });

  // WINCH leaves gunicorn's num_workers at 0: the old master's workers only finish their requests and none is forked again until a HUP.
  it('a WINCHed old master still finishing a long request is not serving: the new master is committed', () => {
    const winched = { pid: 1, workers: workers(150), winchedAt: 230 };
    expect(recogniseLeftover(facts({ master: winched, upgrade: { pid: 2, workers: workers(210, 211) } }))).toEqual({ kind: 'idle-old-master', keep: 'v2', back: 'v1', idle: 1, serving: 2 });
  });

  it('a WINCHed master HUPed back (workers younger than the WINCH) serves again: it is kept', () => {
    const back = { pid: 1, workers: workers(240, 241), winchedAt: 230 };
    expect(recogniseLeftover(facts({ master: back, upgrade: { pid: 2, workers: workers(210) } }))).toMatchObject({ kind: 'two-masters', keep: 'v2', stop: 2 });
    expect(recogniseLeftover({ ...facts({ master: back }), current: 'v2' })).toEqual({ kind: 'consistent', serves: 'v2' });
  });

  it('a WINCHed master that nothing else serves beside is revived with HUP, never reported consistent', () => {
    // The unfinished new master has no workers: HUP the old one back, then stop the new one.
    expect(recogniseLeftover(facts({ master: { pid: 1, workers: workers(150), winchedAt: 230 }, upgrade: { pid: 2, workers: [] } }))).toEqual({ kind: 'retired-master', keep: 'v1', master: 1, stop: 2 });
    // Alone, one worker finishing its request: it would serve nothing once that request ends.
    expect(recogniseLeftover(facts({ current: 'v1', master: { pid: 1, workers: workers(150), winchedAt: 230 } }))).toEqual({ kind: 'retired-master', keep: 'v1', master: 1 });
    // Alone, no worker left: the release that served before the last switch.
    expect(recogniseLeftover(facts({ master: { pid: 1, workers: [], winchedAt: 230 } }))).toEqual({ kind: 'retired-master', keep: 'v1', master: 1 });
  });

  it('records the WINCH before sending it, in the shell that checks the start time; settling reads it back', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gd-winch-'));
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const startTime = readFileSync(`/proc/${child.pid}/stat`, 'utf8').replace(/.*\) /, '').split(' ')[19] ?? '';
      const record = winchRecordOf(path.join(dir, 'gunicorn.pid'));
      expect(record).toBe(path.join(dir, 'gunicorn.pid.winch'));
      const before = Date.now() / 1000;
      expect(spawnSync('/bin/sh', ['-c', winchCommand(child.pid!, startTime, record).text]).status).toBe(0);
      const read = spawnSync('/bin/sh', ['-c', agesCommand(dir, path.join(dir, 'switch.log'), record).text], { encoding: 'utf8' }).stdout;
      expect(winchedAt(read, { pid: child.pid!, startTime })).toBeGreaterThanOrEqual(Math.floor(before));
      // A pid reused since: another start time, no record for it.
      expect(winchedAt(read, { pid: child.pid!, startTime: '1' })).toBeUndefined();
    } finally {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the WINCH record only for the master it names (pid and start time)', () => {
    expect(winchedAt('winch=41 5000 1700000000.25\n', { pid: 41, startTime: '5000' })).toBe(1700000000.25);
    expect(winchedAt('winch=41 5000 1700000000.25\n', { pid: 41, startTime: '5001' })).toBeUndefined();
    expect(winchedAt('winch=\n', { pid: 41, startTime: '5000' })).toBeUndefined();
  });

  it('refuses when nothing serves', () => {
    expect(recogniseLeftover(facts({ master: { pid: 1, workers: [] }, upgrade: { pid: 2, workers: [] } }))).toMatchObject({ kind: 'refuse', why: expect.stringMatching(/neither the old master 1 nor the new master 2/) });
    expect(recogniseLeftover(facts({ master: { pid: 1, workers: [] } }))).toMatchObject({ kind: 'refuse' });
  });

  it('a run that put the host back (switch back, old workers never stopped) reads as consistent', () => {
    const back = parseSwitchLog('100 releases/v0 releases/v1\n200 releases/v1 releases/v2\n201 releases/v2 releases/v1\n');
    expect(recogniseLeftover({ current: 'v1', switches: back, master: { pid: 1, workers: workers(150, 160) } })).toEqual({ kind: 'consistent', serves: 'v1' });
  });
});

describe('the post step reads what the main step saved', () => {
  const hosts = [{ label: 'deploy@a' }, { label: 'deploy@b' }] as Parameters<typeof postTargets>[1];
  const saved = (state: Record<string, string>) => readMainRecord((name) => state[name] ?? '');

  it('does nothing after a main step that finished on its own, or took no lock', () => {
    expect(postTargets(saved({ token: 'abc', finished: 'true', phases: '{"deploy@a":"done"}' }), hosts)).toMatch(/finished on its own/);
    expect(postTargets(saved({}), hosts)).toMatch(/took no deploy lock/);
  });

  it('visits the hosts the killed main step had locked', () => {
    expect(postTargets(saved({ token: 'abc', phases: '{"deploy@b":"reloading"}' }), hosts)).toEqual([{ label: 'deploy@b' }]);
  });

  it('visits a host whose lock was asked for (recorded before the command): releases it if the lock was taken, leaves it otherwise', () => {
    expect(postTargets(saved({ token: 'abc', phases: '{"deploy@a":"locking"}' }), hosts)).toEqual([{ label: 'deploy@a' }]);
    expect(postLockDecision('locked=yes\ntoken=abc\nheartbeat-age=70\n', 'abc', 'locking')).toBe('ours');
    expect(postLockDecision('locked=yes\ntoken=other\nheartbeat-age=1\n', 'abc', 'locking')).toBe('other');
    expect(postLockDecision('locked=no\n', 'abc', 'locking')).toBe('never-taken');
    expect(postLockDecision('locked=no\n', 'abc', 'reloading')).toBe('take');
  });
});

it("finds the temporary links a dead run left, never this run's", () => {
  expect(tempLinksOf('current.ab12\nprevious.ff\ncurrent.me01\ncurrent.old\ncurrent\n', 'me01')).toEqual(['current.ab12', 'previous.ff']);
});

describe('the `.2` pidfile a killed new master leaves', () => {
  it('is removed when it names no live process (or nothing), kept while its pid lives, and a missing one is no error', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gd-stale-'));
    try {
      const pidfile = path.join(dir, 'gunicorn.pid.2');
      const run = () => spawnSync('/bin/sh', ['-c', stalePidfileRemoval(pidfile).text], { encoding: 'utf8' });
      const dead = spawnSync('/bin/true').pid;
      writeFileSync(pidfile, `${dead}\n`);
      expect(run().status).toBe(0);
      expect(existsSync(pidfile)).toBe(false);
      writeFileSync(pidfile, `${process.pid}\n`);
      expect(run().status).toBe(0);
      expect(existsSync(pidfile), 'a live pid: maybe a real upgrade').toBe(true);
      writeFileSync(pidfile, '');
      run();
      expect(existsSync(pidfile)).toBe(false);
      expect(run().status, 'missing').toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
