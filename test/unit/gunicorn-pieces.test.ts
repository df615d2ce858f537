import { describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunicornArgs, parseCheck, parseConfigs, preflightCommand, readConfigsCommand } from '../../src/servers/gunicorn/gunicorn-commands.js';
import { run } from '../support/proc.js';
import { isGunicorn, type GunicornMaster } from '../../src/servers/gunicorn/master-check.js';
import { parseMarks, pruneMarksCommand, readMarksCommand, readyDirOf } from '../../src/servers/gunicorn/ready-marks.js';
import { strategyProblem } from '../../src/servers/gunicorn/strategy-fit.js';

const master: GunicornMaster = {
  pid: 10,
  startTime: '99',
  python: '/srv/venv/bin/python',
  argv: ['/srv/venv/bin/python', '/srv/venv/bin/gunicorn', '-c', 'gunicorn.conf.py', 'app:application'],
  cwd: '/srv/app/releases/v1',
  workers: [11, 12],
  daemonized: true,
};

/** The command as it runs when no user change is needed: what follows the runuser guard. */
const asRun = (text: string) => text.slice(text.indexOf('; fi; ') + 6);

describe('gunicorn command builders', () => {
  it('finds gunicorn arguments after the script or -m gunicorn', () => {
    expect(gunicornArgs(master.argv)).toEqual(['-c', 'gunicorn.conf.py', 'app:application']);
    expect(gunicornArgs(['/usr/bin/python3', '-m', 'gunicorn', '--daemon', 'app'])).toEqual(['--daemon', 'app']);
    expect(gunicornArgs(['gunicorn: master [app]'])).toBeUndefined();
  });

  it("runs checks as the master's user when the SSH user is root and the master is not (a release only root can read fails there)", () => {
    const text = preflightCommand(master, '/r').text;
    expect(text.startsWith(`if [ "$(id -u)" = 0 ] && o=$(stat -c %U /proc/${master.pid}) && [ "$o" != root ]; then exec runuser -u "$o" -- /bin/sh -c 'cd /r && `)).toBe(true);
    expect(readConfigsCommand(master, ['/r'])?.text).toContain('then exec runuser -u "$o" -- /bin/sh -c');
  });

  it('checks the new release with gunicorn --check-config and the master argv, quoted', () => {
    const command = asRun(preflightCommand({ ...master, argv: [...master.argv.slice(0, 4), "app:create_app('x y')"] }, '/srv/app/releases/v2').text);
    expect(command).toBe(
      `cd /srv/app/releases/v2 && PWD=/srv/app/releases/v2 /srv/venv/bin/python /srv/venv/bin/gunicorn -c gunicorn.conf.py 'app:create_app('\\''x y'\\'')' --chdir /srv/app/releases/v2 --check-config`,
    );
  });

  it('imports the app spec when the argv is hidden by setproctitle', () => {
    const titled = { ...master, python: '/usr/bin/python3.11', argv: ['gunicorn: master [app:application]'], titledApp: 'app:application' };
    expect(asRun(preflightCommand(titled, '/r').text)).toMatch(/^cd \/r && \/usr\/bin\/python3\.11 -c '.*import_app.*' \/r app:application$/s);
    expect(readConfigsCommand(titled, ['/r'])?.text).toMatch(/ 1 \/r none - - app:application$/);
    expect(asRun(readConfigsCommand(master, ['/r', '/s'])?.text ?? '')).toMatch(/^cd \/r && .* 2 \/r \/s none - - -c gunicorn\.conf\.py app:application$/s);
    // With the check: --check-config with the master's arguments, or an import of the app spec.
    expect(readConfigsCommand(master, ['/r'], { releaseDir: '/r' })?.text).toMatch(/ 1 \/r config \/r - -c gunicorn\.conf\.py app:application$/);
    expect(readConfigsCommand(master, ['/r'], { releaseDir: '/r', appSpec: 'wsgi:app' })?.text).toMatch(/ 1 \/r import \/r wsgi:app -c gunicorn\.conf\.py app:application$/);
    expect(readConfigsCommand(titled, ['/r', '/s'], { releaseDir: '/r' })?.text).toMatch(/ 2 \/r \/s import \/r app:application app:application$/);
    expect(readConfigsCommand({ ...master, argv: ['/usr/bin/python3', '/srv/run.py'] }, ['/r'])).toBeUndefined();
  });
});

describe("reading gunicorn's config of several releases in one Python start", () => {
  it('parses one tagged line per release, in the order asked, and nothing for a release that failed', () => {
    const line = (dir: number, workers: number) => JSON.stringify({ dir, daemon: true, preload_app: false, workers, pidfile: '/p', graceful_timeout: 30, max_requests: 0 });
    const configs = parseConfigs(`noise\n${line(1, 4)}\nTraceback...\n{"dir": oops\n`, 3);
    expect(configs.map((config) => config?.workers)).toEqual([undefined, 4, undefined]);
    expect(parseCheck(`${line(0, 2)}\n{"check": true}\n`)).toBe(true);
    expect(parseCheck('{"check": false}\n')).toBe(false);
    expect(parseCheck('Traceback ...\n')).toBeUndefined();
  });

  // Debian's gunicorn under /usr/bin/python3, as below: the check runs after the reads, in its own child.
  it.runIf(process.getuid?.() === 0)("checks a release in the same Python start: gunicorn's --check-config, or an import of the app spec", async () => {
    const root = await mkdtemp(join(tmpdir(), 'gd-check-'));
    try {
      const release = async (name: string, app: string) => {
        const dir = join(root, name);
        await mkdir(dir);
        await writeFile(join(dir, 'gunicorn.conf.py'), 'workers = 3\n');
        await writeFile(join(dir, 'app.py'), app);
        return dir;
      };
      const good = await release('good', 'def application(environ, start_response):\n    pass\n');
      const broken = await release('broken', 'import no_such_module_here\n');
      const visible: GunicornMaster = { ...master, python: '/usr/bin/python3', argv: ['/usr/bin/python3', '/usr/bin/gunicorn', '-c', 'gunicorn.conf.py', 'app:application'] };
      const titled: GunicornMaster = { ...master, python: '/usr/bin/python3', argv: ['gunicorn: master [app:application]'], titledApp: 'app:application' };
      for (const who of [visible, titled]) {
        const passed = await run('/bin/sh', ['-c', readConfigsCommand(who, [good], { releaseDir: good })?.text ?? 'false']);
        expect(parseCheck(passed.stdout), passed.stderr).toBe(true);
        expect(parseConfigs(passed.stdout, 1)[0]).toMatchObject({ workers: 3 });
        const failed = await run('/bin/sh', ['-c', readConfigsCommand(who, [broken], { releaseDir: broken })?.text ?? 'false']);
        expect(parseCheck(failed.stdout)).toBe(false);
        expect(failed.stderr).toMatch(/ModuleNotFoundError: No module named 'no_such_module_here'/);
        // The config still reads: the app is not imported to read it.
        expect(parseConfigs(failed.stdout, 1)[0]).toMatchObject({ workers: 3 });
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  // Debian's gunicorn (python3-gunicorn, installed by the sandbox script) under /usr/bin/python3.
  it.runIf(process.getuid?.() === 0)("runs with gunicorn's own parser: each release's gunicorn.conf.py, its own imports, a broken one failing alone", async () => {
    const root = await mkdtemp(join(tmpdir(), 'gd-configs-'));
    try {
      const release = async (name: string, conf: string, settings?: string) => {
        const dir = join(root, name);
        await mkdir(dir);
        await writeFile(join(dir, 'gunicorn.conf.py'), conf);
        if (settings) await writeFile(join(dir, 'release_settings.py'), settings);
        return dir;
      };
      // Both import a module of the same name from their own release: each must see its own.
      const v1 = await release('v1', 'from release_settings import WORKERS as workers\ngraceful_timeout = 10\n', 'WORKERS = 2\n');
      const v2 = await release('v2', 'from release_settings import WORKERS as workers\ndaemon = True\n', 'WORKERS = 5\n');
      const broken = await release('broken', 'raise RuntimeError("no config")\n');
      const titled: GunicornMaster = { ...master, python: '/usr/bin/python3', argv: ['gunicorn: master [app:application]'], titledApp: 'app:application' };
      const command = readConfigsCommand(titled, [v2, broken, v1]);
      const result = await run('/bin/sh', ['-c', command?.text ?? 'false']);
      const [two, none, one] = parseConfigs(result.stdout, 3);
      expect(two, result.stderr).toMatchObject({ workers: 5, daemon: true });
      expect(none).toBeUndefined();
      expect(one).toMatchObject({ workers: 2, daemon: false, graceful_timeout: 10 });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('ready marks', () => {
  it('lives beside the pidfile and parses code, version and status line', () => {
    expect(readyDirOf('/srv/app/run/gunicorn.pid')).toBe('/srv/app/run/ready');
    expect(parseMarks('12 200\tv2\t200 OK\n13 503\t\t503 Service Unavailable\ngarbage\n')).toEqual([
      { pid: 12, status: 200, version: 'v2', text: '200 OK' },
      { pid: 13, status: 503, version: undefined, text: '503 Service Unavailable' },
    ]);
    expect(readMarksCommand('/srv/app/run/ready', [1, 2]).text).toContain('for p in 1 2;');
    expect(pruneMarksCommand('/d', [1, 2]).text).toContain("k='1 2'");
  });
});

describe('strategyProblem', () => {
  const config = { source: 'argv' as const, daemon: true, preload_app: false, workers: 2, pidfile: '/p', graceful_timeout: 30, max_requests: 0 };
  it('accepts each strategy where it works', () => {
    expect(strategyProblem('usr2', config, master)).toBeUndefined();
    expect(strategyProblem('hup', config, master)).toBeUndefined();
    expect(strategyProblem('rolling', { ...config, daemon: false }, master)).toBeUndefined();
  });
  it('refuses HUP and rolling on preload apps, naming usr2', () => {
    expect(strategyProblem('hup', { ...config, preload_app: true }, master)).toMatch(/preload_app.*usr2/);
    expect(strategyProblem('rolling', { ...config, preload_app: true }, master)).toMatch(/preload_app.*usr2/);
    expect(strategyProblem('usr2', { ...config, preload_app: true }, master)).toBeUndefined();
  });
  it('refuses USR2 in the foreground, from the config or, without it, the process tree', () => {
    expect(strategyProblem('usr2', { ...config, daemon: false }, master)).toMatch(/foreground.*rolling/);
    expect(strategyProblem('usr2', undefined, { ...master, daemonized: false })).toMatch(/foreground/);
    expect(strategyProblem('usr2', { ...config, source: 'default-file', daemon: false }, master)).toBeUndefined();
    expect(strategyProblem('hup', { ...config, source: 'default-file', preload_app: true }, master)).toMatch(/preload_app/);
  });
});

describe('isGunicorn', () => {
  const named = (...argv: string[]) => isGunicorn({ pid: 1, ppid: 0, pgid: 1, sid: 1, startTime: '1', exe: '', cwd: '', argv, children: [], booted: [] });
  it('knows gunicorn by its title, its script or -m gunicorn', () => {
    expect(named('gunicorn: master [app:application]')).toBe(true);
    expect(named('/usr/bin/python3', '/usr/bin/gunicorn', '-c', 'gunicorn.conf.py')).toBe(true);
    expect(named('/srv/venv/bin/python3.11', '-u', '/srv/venv/bin/gunicorn', 'app')).toBe(true);
    expect(named('python3', '-m', 'gunicorn', 'app')).toBe(true);
    expect(named('/usr/local/bin/gunicorn', 'app')).toBe(true);
  });
  it('does not take a shell or a tool that mentions gunicorn for gunicorn', () => {
    expect(named('bash', '-c', 'cd /srv/app/current && exec /usr/bin/gunicorn -c gunicorn.conf.py')).toBe(false);
    expect(named('/usr/bin/tail', '-f', '/var/log/gunicorn/error.log')).toBe(false);
    expect(named('/usr/bin/python3', '/usr/bin/supervisord', '-c', '/etc/gunicorn.conf')).toBe(false);
    expect(named('python3', '-m', 'http.server')).toBe(false);
  });
});
