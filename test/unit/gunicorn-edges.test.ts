import { describe, expect, it } from 'vitest';
import { RemoteCommandError } from '../../src/errors.js';
import { GunicornServer } from '../../src/servers/gunicorn/gunicorn-server.js';
import type { GunicornConfig } from '../../src/servers/gunicorn/gunicorn-commands.js';
import type { GunicornMaster } from '../../src/servers/gunicorn/master-check.js';
import { parseReexecChildren, reexecChildCommand } from '../../src/servers/gunicorn/reexec-child.js';
import { reloadPlan } from '../../src/servers/gunicorn/reload-plan.js';
import { nextRollingStep } from '../../src/servers/gunicorn/rolling-strategy.js';
import { cgroupCommand, systemdServiceOf } from '../../src/servers/gunicorn/service-cgroup.js';
import { strategyProblem } from '../../src/servers/gunicorn/strategy-fit.js';

const master: GunicornMaster = {
  pid: 10,
  startTime: '99',
  python: '/usr/bin/python3.11',
  argv: ['gunicorn: master [app:application]'],
  cwd: '/srv/app/releases/v1',
  workers: [11, 12],
  daemonized: true,
  titledApp: 'app:application',
};
const config: GunicornConfig = { source: 'argv', daemon: true, preload_app: false, workers: 3, pidfile: '/p', graceful_timeout: 50, max_requests: 0 };

describe('systemd service of a process, from /proc/<pid>/cgroup', () => {
  it('finds the unit on the v2 line and on the v1 name=systemd line', () => {
    expect(systemdServiceOf('0::/system.slice/gunicorn.service\n')).toBe('gunicorn.service');
    expect(systemdServiceOf('0::/system.slice/app@blue.service/payload\n')).toBe('app@blue.service');
    expect(systemdServiceOf('12:memory:/system.slice/other.service\n1:name=systemd:/system.slice/web.service\n0::/\n')).toBe('web.service');
    expect(systemdServiceOf('0::/user.slice/user-1000.slice/user@1000.service/app.slice/myapp.service')).toBe('myapp.service');
    expect(systemdServiceOf('0::/gd-abc.slice/app-abc.service')).toBe('app-abc.service');
  });
  it('finds none for a login session, a container root or a v1 controller line', () => {
    expect(systemdServiceOf('0::/user.slice/user-1000.slice/session-3.scope\n')).toBeUndefined();
    expect(systemdServiceOf('0::/user.slice/user-1000.slice/user@1000.service/init.scope')).toBeUndefined();
    expect(systemdServiceOf('0::/\n')).toBeUndefined();
    expect(systemdServiceOf('4:memory:/system.slice/docker.service\n0::/\n')).toBeUndefined();
    expect(systemdServiceOf('')).toBeUndefined();
  });
  it('reads the cgroup of a pid without failing when it is unreadable', () => {
    expect(cgroupCommand(42).text).toBe('cat /proc/42/cgroup 2>/dev/null; true');
  });
  it('makes usr2 (only usr2) refuse such a master, naming rolling', () => {
    expect(strategyProblem('usr2', config, master, 'gunicorn.service')).toMatch(/systemd service gunicorn\.service.*Use strategy: rolling/);
    expect(strategyProblem('rolling', config, master, 'gunicorn.service')).toBeUndefined();
    expect(strategyProblem('hup', config, master, 'gunicorn.service')).toBeUndefined();
  });
});

describe('reload plan', () => {
  it('takes the worker count and stop wait from the new release', () => {
    expect(reloadPlan(config, undefined, 2)).toMatchObject({ workers: 3, stopSeconds: 55 });
  });
  it('trusts a release file read without the master arguments only when the running release agrees with the master', () => {
    const file = { ...config, source: 'default-file' as const };
    expect(reloadPlan(file, { ...file, workers: 2 }, 2)).toMatchObject({ workers: 3 });
    expect(reloadPlan(file, { ...file, workers: 1 }, 4)).toMatchObject({ workers: 4, why: expect.stringMatching(/-w on the command line/) });
    // One worker short: a recycled worker between its exit and its replacement.
    expect(reloadPlan(file, { ...file, workers: 2, max_requests: 100 }, 1)).toMatchObject({ workers: 3 });
    expect(reloadPlan(file, { ...file, workers: 2 }, 1)).toMatchObject({ workers: 1 });
  });
  it('keeps the master count and gunicorn default graceful_timeout when nothing could be read', () => {
    expect(reloadPlan(undefined, undefined, 4)).toMatchObject({ workers: 4, stopSeconds: 35 });
  });
});

describe('rolling steps', () => {
  /** Plays the steps as gunicorn would (TTOU stops the oldest: an old worker while any is left). */
  function roll(old: number, target: number): string[] {
    const steps: string[] = [];
    let count = old;
    for (let step = nextRollingStep(old, count, target); step; step = nextRollingStep(old, count, target)) {
      steps.push(step);
      count += step === 'TTIN' ? 1 : -1;
      if (step === 'TTOU' && old > 0) old -= 1;
      expect(steps.length).toBeLessThan(20);
    }
    expect(count).toBe(target);
    return steps;
  }
  it('keeps capacity at the target while it replaces every old worker', () => {
    expect(roll(2, 2)).toEqual(['TTIN', 'TTOU', 'TTIN', 'TTOU']);
    expect(roll(2, 3)).toEqual(['TTIN', 'TTIN', 'TTOU', 'TTIN', 'TTOU']);
    expect(roll(3, 2)).toEqual(['TTOU', 'TTIN', 'TTOU', 'TTIN', 'TTOU']);
  });
  it('only adjusts the count once no old worker is left (they may all have been recycled)', () => {
    expect(nextRollingStep(0, 2, 2)).toBeUndefined();
    expect(nextRollingStep(0, 2, 3)).toBe('TTIN');
    expect(nextRollingStep(0, 3, 2)).toBe('TTOU');
  });
});

describe('the re-executed USR2 master', () => {
  it('is the child whose environment names the old master, checked against its start time', () => {
    const text = reexecChildCommand({ pid: 10, startTime: '99' }).text;
    expect(text).toContain(`cut -d' ' -f20)" = 99 ] || exit 0;`);
    expect(text).toContain('ps -o pid= --ppid 10');
    expect(text).toContain('grep -qx GUNICORN_PID=10 ');
  });
  it('parses pid and start time lines among other output', () => {
    expect(parseReexecChildren('pidfile=10\nmaster.children=11:1 12:\n12 4567\n\n')).toEqual([{ pid: 12, startTime: '4567' }]);
    expect(parseReexecChildren('')).toEqual([]);
  });
});

describe('the preflight of a gunicorn release', () => {
  /** A host whose commands answer by purpose, each after `ms`; it records how many had ended when each started. */
  function scriptedHost(answers: Record<string, { stdout?: string; stderr?: string; code?: number; ms: number }>) {
    const started: [string, number][] = [];
    let ended = 0;
    const host = {
      name: 'deploy@web1',
      async exec(purpose: string, _command: unknown, options: { allowFailure?: boolean } = {}) {
        started.push([purpose, ended]);
        const answer = answers[purpose] ?? { ms: 0 };
        await new Promise((resolve) => setTimeout(resolve, answer.ms));
        ended += 1;
        if (answer.code && !options.allowFailure) throw new RemoteCommandError(purpose, 'deploy@web1', answer.code, answer.stderr ?? '');
        return { stdout: answer.stdout ?? '', stderr: answer.stderr ?? '', code: answer.code ?? 0 };
      },
      upload: async () => undefined,
      close: async () => undefined,
    };
    return { host, started };
  }
  const server = new GunicornServer({ pidfile: '/srv/app/run/gunicorn.pid', appDir: '/srv/app', strategy: 'usr2', reloadTimeoutSeconds: 60, switchLog: '/srv/app/.switch-log' });
  // readConfigsCommand's answer for up to two release dirs (tagged by their index).
  const configLines = [0, 1].map((dir) => `${JSON.stringify({ dir, ...config, daemon: true })}\n`).join('');
  const readConfig = { stdout: configLines, ms: 30 };
  // The same, with the import check's verdict: the preflight's one Python start.
  const checked = (passed: boolean, ms = 30) => ({ stdout: `${configLines}{"check": ${passed}}\n`, stderr: passed ? '' : 'ModuleNotFoundError: No module named app', ms });

  it('starts the import check (the config reads in the same Python start: the new release and, for a titled master, its own) and the cgroup read at once', async () => {
    const { host, started } = scriptedHost({ 'read the master cgroup': { stdout: '0::/\n', ms: 30 }, 'import check of the new release': checked(true) });
    await new GunicornServer({ pidfile: '/srv/app/run/gunicorn.pid', appDir: '/srv/app', strategy: 'usr2', reloadTimeoutSeconds: 60, switchLog: '/srv/app/.switch-log' }).preflight(host, master, '/srv/app/releases/v2');
    expect(started.sort()).toEqual([
      ['import check of the new release', 0],
      ['read the master cgroup', 0],
    ]);
  });

  it('fails the preflight when the check printed no verdict, as when Python died', async () => {
    const { host } = scriptedHost({ 'read the master cgroup': { stdout: '0::/\n', ms: 0 }, 'import check of the new release': { stdout: configLines, stderr: 'Killed', code: 137, ms: 0 } });
    await expect(server.preflight(host, master, '/srv/app/releases/v2')).rejects.toThrow(/cannot be loaded by the master's interpreter.*\n.*Killed/);
  });

  /** Runs a preflight of releases/v2, then a reload into what `current` names; the purposes each started. */
  async function preflightThenReload(current: string) {
    const fresh = new GunicornServer({ pidfile: '/srv/app/run/gunicorn.pid', appDir: '/srv/app', strategy: 'usr2', reloadTimeoutSeconds: 60, switchLog: '/srv/app/.switch-log' });
    const { host, started } = scriptedHost({
      'read the gunicorn config': readConfig,
      'read the master cgroup': { stdout: '0::/\n', ms: 0 },
      'import check of the new release': checked(true, 0),
      'read current': { stdout: `${current}\n`, ms: 0 },
      // The strategy's first step fails: only what the reload read before it matters here.
      'look for ready marks': { code: 1, ms: 0 },
    });
    await fresh.preflight(host, master, '/srv/app/releases/v2');
    const lines: string[] = [];
    await fresh.reload(host, master, (line) => lines.push(line)).catch(() => undefined);
    const purposes = started.map(([purpose]) => purpose);
    return { purposes, configReads: purposes.filter((purpose) => purpose === 'read the gunicorn config').length, lines };
  }

  it("plans the reload from the preflight's config reads: after the switch, no config is read again", async () => {
    const { purposes, configReads, lines } = await preflightThenReload('releases/v2');
    expect(configReads).toBe(0);
    expect(purposes).toContain('read current');
    expect(lines.join('\n')).toMatch(/stop wait \d+s/);
  });

  it('reads the config of a release the preflight did not read (current moved elsewhere since)', async () => {
    expect((await preflightThenReload('releases/v0')).configReads).toBe(1);
  });

  it("says the strategy cannot work before what the import check found, and only after the check ended", async () => {
    const { host } = scriptedHost({
      'read the master cgroup': { stdout: '0::/system.slice/app.service\n', ms: 0 },
      'import check of the new release': checked(false, 40),
    });
    await expect(server.preflight(host, master, '/srv/app/releases/v2')).rejects.toThrow(/strategy 'usr2' cannot work here: .*app\.service/);
    const fits = scriptedHost({ 'read the master cgroup': { stdout: '0::/\n', ms: 0 }, 'import check of the new release': checked(false, 40) });
    await expect(server.preflight(fits.host, master, '/srv/app/releases/v2')).rejects.toThrow(/cannot be loaded by the master's interpreter.*\n.*No module named app/);
  });
  it("reads a master's interpreter once: the inspection before the signal finds it known (same pid and start time)", async () => {
    // inspectPidfileCommand's answer for a titled (setproctitle) master in releases/v1 with two workers.
    const inspected = (startTime: string) =>
      [
        'pidfile=6310',
        `master.stat=S 1 6308 6308 0 -1 4194368 2375 0 1 0 4 1 0 0 20 0 1 0 ${startTime} 32583680`,
        'master.exe=/usr/bin/python3.11',
        'master.cwd=/srv/app/releases/v1',
        'master.argv=gunicorn: master [app:application]',
        'master.uptime=258.67',
        'master.children=6311:1:1795306735 6312:1:1795306735 ',
        'master.pid=6310',
        'pidfile2=',
        'appdir=/srv/app',
      ].join('\n');
    const interpreter = { stdout: 'execfn=/srv/venv/bin/gunicorn\nshebang=#!/srv/venv/bin/python3\n', ms: 0 };
    const fresh = new GunicornServer({ pidfile: '/srv/app/run/gunicorn.pid', appDir: '/srv/app', strategy: 'usr2', reloadTimeoutSeconds: 60, switchLog: '/srv/app/.switch-log' });
    const first = scriptedHost({ 'inspect the gunicorn master': { stdout: inspected('19498'), ms: 0 }, "find the master's interpreter": interpreter });
    const found = await fresh.inspect(first.host);
    expect(found.python).toBe('/srv/venv/bin/python3');
    expect((await fresh.inspect(first.host)).python).toBe('/srv/venv/bin/python3');
    expect(first.started.filter(([purpose]) => purpose === "find the master's interpreter")).toHaveLength(1);
    // A master started anew (another start time) is read afresh.
    const restarted = scriptedHost({ 'inspect the gunicorn master': { stdout: inspected('20000'), ms: 0 }, "find the master's interpreter": interpreter });
    await fresh.inspect(restarted.host);
    expect(restarted.started.filter(([purpose]) => purpose === "find the master's interpreter")).toHaveLength(1);
  });
});
