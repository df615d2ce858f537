import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MasterCheckError } from '../../src/errors.js';
import type { RemoteHost } from '../../src/remote/remote-host.js';
import { ReloadFailure } from '../../src/servers/server-driver.js';
import type { UwsgiInstance } from '../../src/servers/uwsgi/instance-check.js';
import type { PidfileFacts, ProcessFacts } from '../../src/servers/gunicorn/process-facts.js';
import { retireEmptyWorkers } from '../../src/servers/uwsgi/empty-workers.js';
import { requireControls, verifyProcess } from '../../src/servers/uwsgi/instance-check.js';
import { parseStats } from '../../src/servers/uwsgi/stats-reader.js';
import { FIFO_REFUSED, fifoCommand, preflightCommand } from '../../src/servers/uwsgi/uwsgi-commands.js';
import { optionsOf, parseIni, settingsOf } from '../../src/servers/uwsgi/uwsgi-options.js';
import { throughCurrent, UwsgiServer } from '../../src/servers/uwsgi/uwsgi-server.js';
import { judge } from '../../src/servers/uwsgi/worker-follow.js';
import { recogniseUwsgiLeftover, type UwsgiLeftoverFacts } from '../../src/servers/uwsgi/uwsgi-leftover.js';
import { parseSwitchLog } from '../../src/servers/gunicorn/leftover-state.js';
import { LocalHost } from './support/local-host.js';

const INI = `
; comment
[other]
processes = 9
[uwsgi]
plugins = python3
master = true
processes = 4
lazy-apps = true
pythonpath = /srv/app/current
pythonpath = /srv/lib
module = app:application
master-fifo = run/uwsgi.fifo
stats = /srv/app/run/stats.sock
virtualenv = /srv/app/current/venv
`;

describe('uWSGI options', () => {
  it('reads the [uwsgi] section of the ini where --ini stands; later options win, pythonpath adds up', () => {
    const { options, configFile } = optionsOf(['uwsgi', '--processes', '2', '--ini', 'uwsgi.ini', '-p', '3', '--need-app'], (path) => (path === 'uwsgi.ini' ? parseIni(INI) : undefined));
    const settings = settingsOf(options, configFile);
    expect(settings).toMatchObject({
      configFile: 'uwsgi.ini',
      master: true,
      lazyApps: true,
      needApp: true,
      processes: 3,
      masterFifo: 'run/uwsgi.fifo',
      stats: '/srv/app/run/stats.sock',
      home: '/srv/app/current/venv',
      pythonpath: ['/srv/app/current', '/srv/lib'],
      app: { kind: 'module', target: 'app:application' },
    });
  });

  it('takes a bare *.ini argument and --key=value forms; lazy-apps defaults off', () => {
    const { options, configFile } = optionsOf(['uwsgi', '/srv/app/current/uwsgi.ini', '--wsgi-file=wsgi.py', '--lazy-apps=false'], () => parseIni('[uwsgi]\nmaster\n'));
    expect(configFile).toBe('/srv/app/current/uwsgi.ini');
    expect(settingsOf(options)).toMatchObject({ master: true, lazyApps: false, processes: 1, app: { kind: 'file', target: 'wsgi.py' } });
  });

  it('needs a master, a master FIFO and a stats server, resolved against the master cwd', () => {
    const settings = settingsOf(parseIni(INI));
    expect(requireControls(settings, '/srv/app', 'web1')).toEqual({ fifo: '/srv/app/run/uwsgi.fifo', stats: '/srv/app/run/stats.sock' });
    expect(requireControls({ ...settings, stats: '127.0.0.1:1717' }, '/srv/app', 'web1').stats).toBe('127.0.0.1:1717');
    expect(() => requireControls({ ...settings, masterFifo: undefined, master: false }, '/srv/app', 'web1')).toThrow(/'master = true'.*'master-fifo = /);
  });

  it('points paths through current at the new release for the import check', () => {
    expect(throughCurrent('/srv/app/current/venv', '/srv/app', '/srv/app/releases/v2')).toBe('/srv/app/releases/v2/venv');
    expect(throughCurrent('/srv/app/current', '/srv/app', '/srv/app/releases/v2')).toBe('/srv/app/releases/v2');
    expect(throughCurrent('/srv/app/currently', '/srv/app', '/srv/app/releases/v2')).toBe('/srv/app/currently');
  });
});

const proc = (over: Partial<ProcessFacts> = {}): ProcessFacts => ({
  pid: 100,
  ppid: 1,
  pgid: 100,
  sid: 100,
  startTime: '555',
  exe: '/usr/bin/uwsgi-core',
  cwd: '/srv/app',
  argv: ['uwsgi', '--ini', '/srv/app/current/uwsgi.ini'],
  children: [101, 102],
  booted: [],
  ...over,
});
const facts = (over: Partial<PidfileFacts> = {}): PidfileFacts => ({ pid: 100, master: proc(), parent: proc({ pid: 1, exe: '/usr/lib/systemd/systemd', argv: ['/sbin/init'] }), appDirReal: '/srv/app', ...over });

describe('uWSGI master verification', () => {
  const verify = (value: PidfileFacts) => verifyProcess(value, '/srv/app/run/uwsgi.pid', '/srv/app', 'web1');

  it('accepts a live uWSGI master running in the app dir', () => {
    expect(verify(facts()).pid).toBe(100);
    expect(verify(facts({ master: proc({ cwd: '/srv/app/releases/v1' }) })).pid).toBe(100);
  });

  it.each([
    ['no pidfile', { pid: undefined, master: undefined }, /missing or empty/],
    ['a stale pid', { master: undefined }, /not running \(a stale pidfile\)/],
    ['a reused pid', { master: proc({ exe: '/usr/bin/python3.11', argv: ['python3', 'x.py'] }) }, /is not uWSGI/],
    ['a worker', { parent: proc({ pid: 7 }) }, /child of uWSGI pid 7/],
    ['another app', { master: proc({ cwd: '/srv/other' }) }, /outside \/srv\/app/],
    ['no workers', { master: proc({ children: [] }) }, /has no workers/],
  ])('refuses %s', (_name, over, message) => {
    expect(() => verify(facts(over as Partial<PidfileFacts>))).toThrow(MasterCheckError);
    expect(() => verify(facts(over as Partial<PidfileFacts>))).toThrow(message);
  });
});

describe('following workers through the stats server', () => {
  const stats = (workers: [number, number, number][]) =>
    parseStats(JSON.stringify({ pid: 100, workers: workers.map(([pid, accepting, apps], index) => ({ id: index + 1, pid, accepting, apps, respawn_count: 1, status: 'idle' })) }))!;

  it('counts a worker only when its pid changed, it accepts and it has an app', () => {
    const replaced = new Set([11, 12]);
    expect(judge(stats([[11, 1, 1], [12, 1, 1]]), replaced, 2).verdict).toBe('waiting');
    expect(judge(stats([[21, 0, 0], [12, 1, 1]]), replaced, 2)).toMatchObject({ verdict: 'waiting', serving: [] });
    expect(judge(stats([[21, 1, 1], [12, 1, 1]]), replaced, 2).serving.map((w) => w.pid)).toEqual([21]);
    expect(judge(stats([[21, 1, 1], [22, 1, 1]]), replaced, 2).verdict).toBe('done');
  });

  it('stops at the first new worker that accepts with no app loaded', () => {
    const verdict = judge(stats([[21, 1, 0], [12, 1, 1]]), new Set([11, 12]), 2);
    expect(verdict.verdict).toBe('broken');
    expect(verdict.reason).toMatch(/worker 1 \(pid 21\) accepts requests with no app loaded/);
  });

  it('rejects what is not a stats document', () => {
    expect(parseStats('Traceback ...')).toBeUndefined();
    expect(parseStats('{"workers": []}')).toBeUndefined();
  });
});

describe('a uWSGI reload takes the run\'s cancellation', () => {
  /** A host whose stats server always shows the workers of before: the reload never moves. `onFifo` hears each FIFO write. */
  const stuckHost = (onFifo: () => void): RemoteHost => ({
    name: 'web1',
    async exec(purpose) {
      if (purpose === 'read the uWSGI stats server') {
        return { stdout: JSON.stringify({ pid: 100, workers: [11, 12].map((pid, index) => ({ id: index + 1, pid, accepting: 1, apps: 1 })) }), stderr: '', code: 0 };
      }
      if (purpose.startsWith('write ')) onFifo();
      return { stdout: '', stderr: '', code: 0 };
    },
    upload: async () => undefined,
    close: async () => undefined,
  });
  const settings = settingsOf(parseIni(INI));
  const instance: UwsgiInstance = { pid: 100, startTime: '5', python: 'python3', argv: ['uwsgi'], cwd: '/srv/app', workers: [11, 12], settings, fifo: '/srv/app/run/uwsgi.fifo', stats: '/srv/app/run/stats.sock' };

  it.each(['chain', 'reload'] as const)('%s: a cancel once the FIFO command went out stops the wait at its next turn, handing back the revert', async (strategy) => {
    const controller = new AbortController();
    const server = new UwsgiServer({ pidfile: '/srv/app/run/uwsgi.pid', appDir: '/srv/app', switchLog: '/srv/app/switch.log', strategy, reloadTimeoutSeconds: 30 });
    const steps: string[] = [];
    const error = await server.reload(stuckHost(() => controller.abort()), instance, () => undefined, controller.signal, (step) => steps.push(step)).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ReloadFailure);
    expect(String(error)).toMatch(/cancelled/);
    expect((error as ReloadFailure).handle).toBeDefined();
    expect(steps).toEqual(['signalled']);
  });
});

describe('uWSGI commands', () => {
  it('quotes every value of the import check', () => {
    const command = preflightCommand({ python: '/srv/app/releases/v2/venv/bin/python', releaseDir: '/srv/app/releases/v2', app: { kind: 'module', target: 'app:application' }, pythonpath: ['/srv/app/releases/v2', "/a b'"] }).text;
    expect(command).toMatch(/^cd \/srv\/app\/releases\/v2 && \/srv\/app\/releases\/v2\/venv\/bin\/python -c '.*' \/srv\/app\/releases\/v2 module app:application \/srv\/app\/releases\/v2 '\/a b'\\''' *$/s);
  });

  describe('writing the master FIFO, for real', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gd-fifo-'));
    const fifo = join(dir, 'master.fifo');
    spawnSync('mkfifo', [fifo]);
    // A stand-in master: holds the FIFO open for reading, as uWSGI does, and records what it gets.
    const reader = spawn('python3', ['-c', `import os,sys,time\nfd=os.open(sys.argv[1], os.O_RDONLY|os.O_NONBLOCK)\nfor _ in range(100):\n    time.sleep(0.05)\n    try:\n        d=os.read(fd, 16)\n    except BlockingIOError:\n        d=b''\n    if d:\n        open(sys.argv[2],'wb').write(d)\n        break\n`, fifo, join(dir, 'got')]);
    afterAll(() => {
      reader.kill();
      rmSync(dir, { recursive: true, force: true });
    });
    const startOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/.*\) /s, '').split(' ')[19] ?? '';
    const bash = (text: string) => spawnSync('bash', ['-c', text], { encoding: 'utf8', timeout: 10_000 });

    it('refuses a pid whose start time changed, and a process that does not hold the FIFO', async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const pid = reader.pid ?? 0;
      expect(bash(fifoCommand({ pid, startTime: '1', python: 'python3' }, fifo, 'c').text).status).toBe(FIFO_REFUSED.notTheProcess);
      expect(bash(fifoCommand({ pid: process.pid, startTime: startOf(process.pid), python: 'python3' }, fifo, 'c').text).status).toBe(FIFO_REFUSED.notHeldByMaster);
      expect(bash(fifoCommand({ pid, startTime: startOf(pid), python: 'python3' }, join(dir, 'nothing'), 'c').text).status).toBe(FIFO_REFUSED.notAFifo);
    });

    it('writes the command to the master that holds it', async () => {
      const pid = reader.pid ?? 0;
      const result = bash(fifoCommand({ pid, startTime: startOf(pid), python: 'python3' }, fifo, 'c').text);
      expect(result.status, result.stderr).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(readFileSync(join(dir, 'got'), 'utf8')).toBe('c');
    });
  });
});

describe('retiring workers without an app, for real', () => {
  it('sends HUP only to app-less workers that are children of the verified master', async () => {
    // A stand-in master with two children, and a stranger that the stats might (wrongly) name.
    const master = spawn('bash', ['-c', 'sleep 30 & sleep 30 & wait']);
    const stranger = spawn('sleep', ['30']);
    let children: number[] = [];
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      children = readFileSync(`/proc/${master.pid}/task/${master.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      const [empty = 0, serving = 0] = children;
      const stats = parseStats(
        JSON.stringify({
          pid: master.pid,
          workers: [
            { id: 1, pid: empty, accepting: 1, apps: 0 },
            { id: 2, pid: serving, accepting: 1, apps: 1 },
            { id: 3, pid: stranger.pid, accepting: 1, apps: 0 },
          ],
        }),
      )!;
      const lines: string[] = [];
      const instance = { pid: master.pid ?? 0, startTime: '', python: 'python3', argv: [], cwd: '/', workers: children, settings: settingsOf([]), fifo: '', stats: '' };
      const retired = await retireEmptyWorkers(new LocalHost('web1'), instance, stats, (line) => lines.push(line));
      expect(retired).toEqual([empty]);
      expect(lines.join('\n')).toMatch(new RegExp(`HUP → worker ${empty} \\(no app loaded\\)`));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const alive = (pid: number) => spawnSync('kill', ['-0', String(pid)]).status === 0;
      expect(alive(empty), 'the app-less worker got HUP').toBe(false);
      expect(alive(serving), 'the serving worker is untouched').toBe(true);
      expect(alive(stranger.pid ?? 0), 'a process that is not the master\'s child is untouched').toBe(true);
    } finally {
      for (const pid of children) spawnSync('kill', [String(pid)]);
      master.kill('SIGKILL');
      stranger.kill();
    }
  });
});

describe('the uWSGI preflight, for real', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gd-uwsgi-preflight-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const release = (name: string, body: string) => {
    const path = join(dir, 'releases', name);
    spawnSync('mkdir', ['-p', path]);
    spawnSync('bash', ['-c', 'printf "%s" "$1" > "$2/app.py"', 'write', body, path]);
    return path;
  };
  const instance = (lazyApps: boolean) => ({
    pid: 1,
    startTime: '1',
    python: 'python3',
    argv: [],
    cwd: dir,
    workers: [2, 3],
    settings: { ...settingsOf(parseIni(`[uwsgi]\nmodule = app:application\npythonpath = ${dir}/current\n`)), lazyApps },
    fifo: '',
    stats: '',
  });
  const server = (strategy: 'chain' | 'reload') => new UwsgiServer({ pidfile: `${dir}/run/uwsgi.pid`, appDir: dir, switchLog: `${dir}/switch.log`, strategy, reloadTimeoutSeconds: 30 });

  it('refuses chain without lazy-apps before running anything, naming the fix', async () => {
    const host = new LocalHost('web1');
    await expect(server('chain').preflight(host, instance(false), release('v2', 'application = lambda e, s: []'))).rejects.toThrow(/lazy-apps is off.*'lazy-apps = true'.*strategy: reload/s);
    expect(host.commands).toEqual([]);
  });

  it('imports the new release with the Python of the instance and refuses one that fails or has no WSGI callable', async () => {
    await expect(server('reload').preflight(new LocalHost('web1'), instance(false), release('v3', 'application = lambda e, s: []\n'))).resolves.toBeUndefined();
    await expect(server('chain').preflight(new LocalHost('web1'), instance(true), release('v4', 'raise RuntimeError("broken v4")\n'))).rejects.toThrow(/cannot be loaded by the instance's Python \(python3\).*broken v4/s);
    await expect(server('chain').preflight(new LocalHost('web1'), instance(true), release('v5', 'app = 1\n'))).rejects.toThrow(/no callable WSGI application/);
  });
});

describe('what a dead run left on a uWSGI host', () => {
  const switches = parseSwitchLog('100 releases/v1 releases/v2\n');
  const worker = (id: number, startedAt: number, apps = 1, accepting = true) => ({ id, pid: 10 + id, accepting, apps, startedAt });
  const facts = (workers: ReturnType<typeof worker>[], extra: Partial<UwsgiLeftoverFacts> = {}): UwsgiLeftoverFacts => ({ current: 'v2', switches, lazyApps: true, workers, ...extra });

  it('with lazy-apps, tells the release each worker serves by its age', () => {
    expect(recogniseUwsgiLeftover(facts([worker(1, 150), worker(2, 160)]))).toMatchObject({ kind: 'consistent', serves: 'v2' });
    expect(recogniseUwsgiLeftover(facts([worker(1, 50), worker(2, 60)]))).toMatchObject({ kind: 'current-ahead', serves: 'v1', current: 'v2' });
    expect(recogniseUwsgiLeftover(facts([worker(1, 50), worker(2, 150)]))).toMatchObject({ kind: 'reload', keep: 'v1', found: expect.stringMatching(/workers of v1 and v2 side by side/) });
  });

  it('workers without their app are never consistent: the release they failed to load is left', () => {
    expect(recogniseUwsgiLeftover(facts([worker(1, 50), worker(2, 150, 0)]))).toMatchObject({ kind: 'reload', keep: 'v1', found: expect.stringMatching(/worker 2 \(pid 12\) accepts requests with no app loaded/) });
    // Without lazy-apps the master's code is what failed: current's release.
    expect(recogniseUwsgiLeftover(facts([worker(1, 50, 0)], { lazyApps: false }))).toMatchObject({ kind: 'reload', keep: 'v1' });
    expect(recogniseUwsgiLeftover(facts([worker(1, 50, 0)], { current: 'v1', lazyApps: false, switches: [] }))).toMatchObject({ kind: 'reload', keep: 'v1' });
  });

  it('without lazy-apps, workers all forked before the last switch serve the release before it: a run killed between the switch and the reload is current-ahead', () => {
    // Forked from the master's loaded code, which it loaded through `current` before the switch.
    expect(recogniseUwsgiLeftover(facts([worker(1, 50), worker(2, 60)], { lazyApps: false }))).toMatchObject({ kind: 'current-ahead', serves: 'v1', current: 'v2' });
    // One worker forked after the switch (respawned from the same master, or a reload): the release cannot be told.
    expect(recogniseUwsgiLeftover(facts([worker(1, 50), worker(2, 150)], { lazyApps: false }))).toMatchObject({ kind: 'consistent' });
    // Once settle pointed current back, the same workers are consistent: no flip back and forth.
    expect(recogniseUwsgiLeftover(facts([worker(1, 50), worker(2, 60)], { lazyApps: false, current: 'v1' }))).toMatchObject({ kind: 'consistent', serves: 'v1' });
    // No switch log: nothing to compare with.
    expect(recogniseUwsgiLeftover(facts([worker(1, 50)], { lazyApps: false, switches: [] }))).toMatchObject({ kind: 'consistent' });
  });

  it('waits for loading workers, says what it cannot tell without lazy-apps, refuses a master with no worker', () => {
    expect(recogniseUwsgiLeftover(facts([worker(1, 150, 0, false)]))).toMatchObject({ kind: 'loading' });
    expect(recogniseUwsgiLeftover(facts([worker(1, 150)], { lazyApps: false }))).toEqual({ kind: 'consistent', found: expect.stringMatching(/without lazy-apps, worker ages do not tell the release/) });
    expect(recogniseUwsgiLeftover(facts([]))).toMatchObject({ kind: 'refuse' });
  });

  describe('settling, for real (processes, clock, current and switch log on this machine; stats scripted)', () => {
    let dir = '';
    const spawned: ReturnType<typeof spawn>[] = [];
    const sleeper = () => {
      const child = spawn('sleep', ['60'], { stdio: 'ignore' });
      spawned.push(child);
      return child.pid!;
    };
    afterEach(() => {
      for (const child of spawned.splice(0)) child.kill();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** v2 switched in 10 s ago; the workers `make` returns serve, each [pid, apps]; a FIFO write replaces them all with workers that have their app. */
    async function settleWith(make: () => [number, number][]) {
      dir = mkdtempSync(join(tmpdir(), 'gd-uwsgi-settle-'));
      for (const name of ['v1', 'v2']) mkdirSync(join(dir, 'releases', name), { recursive: true });
      symlinkSync('releases/v2', join(dir, 'current'));
      writeFileSync(join(dir, 'switch.log'), `${Math.floor(Date.now() / 1000) - 10} releases/v1 releases/v2\n`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      let workers = make();
      const fifo: string[] = [];
      const host = new LocalHost('web1', (purpose, command) => {
        if (purpose === 'read the uWSGI stats server') return { stdout: JSON.stringify({ pid: process.pid, workers: workers.map(([pid, apps], index) => ({ id: index + 1, pid, accepting: 1, apps })) }), stderr: '', code: 0 };
        if (purpose.startsWith('write ')) {
          fifo.push(command);
          workers = workers.map(() => [sleeper(), 1]);
          return { stdout: '', stderr: '', code: 0 };
        }
        return undefined;
      });
      const server = new UwsgiServer({ pidfile: join(dir, 'run/uwsgi.pid'), appDir: dir, switchLog: join(dir, 'switch.log'), strategy: 'chain', reloadTimeoutSeconds: 10 });
      const instance: UwsgiInstance = { pid: process.pid, startTime: '0', python: 'python3', argv: ['uwsgi'], cwd: dir, workers: [], settings: settingsOf(parseIni(INI)), fifo: join(dir, 'run/uwsgi.fifo'), stats: join(dir, 'run/stats.sock') };
      server.inspect = async () => instance;
      const pointed: string[] = [];
      const pointCurrent = async (release: string) => {
        pointed.push(release);
        rmSync(join(dir, 'current'));
        symlinkSync(`releases/${release}`, join(dir, 'current'));
        // As switchCurrentCommand does: the switch goes in the log.
        appendFileSync(join(dir, 'switch.log'), `${Date.now() / 1000} releases/v2 releases/${release}\n`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      };
      const lines: string[] = [];
      const settled = await server.settle(host, pointCurrent, (line) => lines.push(line));
      return { settled, pointed, fifo, lines };
    }

    it('a worker without its app (the new release fails inside uWSGI): current back to what served before, every worker replaced', async () => {
      const { settled, pointed, fifo, lines } = await settleWith(() => [
        [sleeper(), 1],
        [sleeper(), 0],
      ]);
      expect(settled).toMatchObject({ repaired: true, serves: 'v1', found: expect.stringMatching(/worker 2 \(pid \d+\) accepts requests with no app loaded/) });
      expect(pointed).toEqual(['v1']);
      expect(fifo).toHaveLength(1);
      expect(lines.join('\n')).toMatch(/HUP → worker \d+ \(no app loaded\)/);
    });

    it('every worker with its app, forked after the switch: consistent, nothing done', async () => {
      const { settled, pointed, fifo } = await settleWith(() => [
        [sleeper(), 1],
        [sleeper(), 1],
      ]);
      expect(settled).toEqual({ found: 'consistent: every worker serves v2 with its app loaded', repaired: false, serves: 'v2' });
      expect(pointed).toEqual([]);
      expect(fifo).toEqual([]);
    });
  });
});
