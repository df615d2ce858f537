import { describe, expect, it } from 'vitest';
import { RemoteCommandError } from '../../src/errors.js';
import { GunicornServer } from '../../src/servers/gunicorn/gunicorn-server.js';
import type { GunicornConfig } from '../../src/servers/gunicorn/gunicorn-commands.js';
import type { GunicornMaster } from '../../src/servers/gunicorn/master-check.js';
import { parseReexecChildren, reexecChildCommand } from '../../src/servers/gunicorn/reexec-child.js';
import { reloadPlan } from '../../src/servers/gunicorn/reload-plan.js';
import { nextRollingStep, stepWaitsFor } from '../../src/servers/gunicorn/rolling-strategy.js';
import { cgroupCommand, systemdServiceOf } from '../../src/servers/gunicorn/service-cgroup.js';
import { chooseStrategy, strategyProblem } from '../../src/servers/gunicorn/strategy-fit.js';
import { parseUnitFacts, problemText, unitFactsCommand, usr2UnitProblem, type UnitFacts } from '../../src/servers/gunicorn/systemd-unit.js';
import { inspectMasterCommand, parsePidfileFacts, valuesOf } from '../../src/servers/gunicorn/process-facts.js';

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
const notifyUnit: UnitFacts = { name: 'gunicorn.service', type: 'notify', pidFile: '', triggeredBy: [], activeState: 'active', mainPid: 10 };
const forkingUnit: UnitFacts = { ...notifyUnit, type: 'forking', pidFile: '/p' };
/** A unit's refusal of usr2 as the message reads, or undefined when systemd can follow it. */
const usr2UnitText = (unit: UnitFacts, pidfile: string | null | undefined): string | undefined => {
  const problem = usr2UnitProblem(unit, pidfile);
  return problem && problemText(problem);
};

describe('what systemd can follow through a USR2 upgrade (systemd 252, gunicorn 20.1-26.1)', () => {
  it('refuses socket activation, whatever the type: gunicorn hands the new master the wrong fds', () => {
    expect(usr2UnitText({ ...forkingUnit, triggeredBy: ['gunicorn.socket'] }, '/p')).toMatch(/gunicorn\.socket \(socket activation\).*wrong file descriptors/);
  });
  it('refuses every type but forking: systemd follows only its main pid', () => {
    for (const type of ['notify', 'simple', 'exec']) expect(usr2UnitText({ ...notifyUnit, type }, '/p')).toMatch(new RegExp(`Type=${type}: systemd follows only its main pid`));
  });
  it('names the exact unit change in each refusal', () => {
    expect(usr2UnitText(notifyUnit, null)).toContain('Type=forking, PIDFile=/run/gunicorn/gunicorn.pid and ExecStart=... --daemon --pid /run/gunicorn/gunicorn.pid');
  });
  it('needs PIDFile= to be the pidfile gunicorn writes', () => {
    expect(usr2UnitText({ ...forkingUnit, pidFile: '' }, '/p')).toMatch(/without PIDFile=/);
    expect(usr2UnitText(forkingUnit, '/other.pid')).toMatch(/PIDFile=\/p but gunicorn writes \/other\.pid/);
    expect(usr2UnitText(forkingUnit, '/p')).toBeUndefined();
    // Without gunicorn's arguments the config cannot tell: the handover itself checks the file names the old master.
    expect(usr2UnitText(forkingUnit, undefined)).toBeUndefined();
  });
  it('reads the facts systemctl show printed, and none when systemd did not answer', () => {
    const values = valuesOf('unit.Type=forking\nunit.PIDFile=/run/gunicorn/gunicorn.pid\nunit.TriggeredBy=gunicorn.socket x.path\nunit.ActiveState=active\nunit.MainPID=42\nunit.Name=g.service\n');
    expect(parseUnitFacts(values)).toEqual({ name: 'g.service', type: 'forking', pidFile: '/run/gunicorn/gunicorn.pid', triggeredBy: ['gunicorn.socket', 'x.path'], activeState: 'active', mainPid: 42 });
    expect(parseUnitFacts(valuesOf('unit.Name=g.service\n'))).toBeUndefined();
  });
  it('quotes the service name in the systemctl command', () => {
    expect(unitFactsCommand("a b'.service").text).toContain(`-- 'a b'\\''.service'`);
  });
  it('locates the master by MainPID (0 = none) and looks for .2 beside PIDFile=, else beside the pidfile', () => {
    const text = inspectMasterCommand({ pidfile: '/srv/app/run/gunicorn.pid', service: 'gunicorn.service' }, '/srv/app').text;
    expect(text).toContain('--property=MainPID');
    expect(text).toContain('[ "$pid" = 0 ] && pid=');
    expect(text).toContain('[ -n "$pf" ] || pf=/srv/app/run/gunicorn.pid');
    expect(parsePidfileFacts('unit.Type=notify\nunit.MainPID=0\nunit.Name=gunicorn.service\npidfile=\nappdir=/srv/app\n')).toMatchObject({ pid: undefined, unit: { type: 'notify', mainPid: 0 } });
  });
});

describe('strategy auto', () => {
  const foreground = { ...master, daemonized: false };
  it('picks usr2 for a daemonized master outside systemd, and under a forking unit systemd can follow', () => {
    expect(chooseStrategy('auto', config, master)).toMatchObject({ strategy: 'usr2', why: expect.stringMatching(/daemonized/) });
    expect(chooseStrategy('auto', config, master, forkingUnit)).toMatchObject({ strategy: 'usr2', why: expect.stringMatching(/systemd follows it through gunicorn\.service's PIDFile=/) });
  });
  it('picks rolling for a foreground master and for a unit systemd cannot follow, saying why', () => {
    expect(chooseStrategy('auto', { ...config, daemon: false }, foreground)).toMatchObject({ strategy: 'rolling', why: expect.stringMatching(/usr2 cannot work here: gunicorn runs in the foreground/) });
    expect(chooseStrategy('auto', { ...config, daemon: false }, foreground, notifyUnit)).toMatchObject({ strategy: 'rolling', why: expect.stringMatching(/Type=notify/) });
  });
  it('gives one error naming both ways out when preload_app rules out rolling and systemd rules out usr2', () => {
    const choice = chooseStrategy('auto', { ...config, daemon: false, preload_app: true }, foreground, notifyUnit);
    expect(choice).toEqual({ problem: expect.stringMatching(/preload_app is on.*usr2 cannot work.*Type=notify.*turn preload_app off.*make usr2 possible/) });
  });
  it('never sends a preload_app user from one refused strategy to another: every strategy asked for gets the one error with the real ways out', () => {
    const preloaded = { ...config, daemon: false, preload_app: true };
    const socketUnit = { ...notifyUnit, triggeredBy: ['gunicorn.socket'] };
    for (const unit of [notifyUnit, socketUnit, undefined]) {
      for (const asked of ['auto', 'usr2', 'rolling', 'hup'] as const) {
        const choice = chooseStrategy(asked, preloaded, foreground, unit);
        expect(choice).toEqual({ problem: expect.stringMatching(/no strategy can serve the new release here: preload_app is on.*turn preload_app off.*make usr2 possible/) });
        expect((choice as { problem: string }).problem).not.toMatch(/Use strategy: (rolling|hup|usr2)/);
      }
    }
    expect((chooseStrategy('hup', preloaded, foreground) as { problem: string }).problem).toMatch(/daemon = True/);
    expect((chooseStrategy('rolling', preloaded, foreground, notifyUnit) as { problem: string }).problem).toMatch(/Type=forking/);
    expect(chooseStrategy('rolling', { ...config, preload_app: true }, master)).toEqual({ problem: expect.stringMatching(/preload_app is on.*Use strategy: usr2\.$/) });
  });
  it('keeps an explicit strategy, or says why it cannot work here', () => {
    expect(chooseStrategy('rolling', config, master)).toEqual({ strategy: 'rolling', why: 'as configured' });
    expect(chooseStrategy('usr2', config, master, notifyUnit)).toEqual({ problem: expect.stringMatching(/^strategy 'usr2' cannot work here: .*Type=notify/) });
  });
});

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
  it('makes usr2 (only usr2) refuse such a master when systemd cannot follow it, naming rolling and the unit change', () => {
    expect(strategyProblem('usr2', config, master, notifyUnit)).toMatch(/systemd service gunicorn\.service.*Type=notify.*Use strategy: rolling.*Type=forking/);
    expect(strategyProblem('rolling', config, master, notifyUnit)).toBeUndefined();
    expect(strategyProblem('hup', config, master, notifyUnit)).toBeUndefined();
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
  const original = (worker: { pid: number }) => worker.pid < 100;
  const workers = (...pids: number[]) => pids.map((pid) => ({ pid, startTime: String(pid) }));
  it('after TTIN, waits until the count is reached and every worker forked since the roll began has booted', () => {
    expect(stepWaitsFor('TTIN', { workers: workers(11, 12, 101), booted: [11, 12] }, 3, original)).toBe('new workers 101 not booted');
    expect(stepWaitsFor('TTIN', { workers: workers(11, 12), booted: [11, 12] }, 3, original)).toBe('2 workers, want 3');
    expect(stepWaitsFor('TTIN', { workers: workers(11, 12, 101), booted: [11, 12, 101] }, 3, original)).toBeUndefined();
  });
  it('after TTOU, waits only for the count: a max_requests respawn still booting does not hold the roll', () => {
    expect(stepWaitsFor('TTOU', { workers: workers(12, 101, 105), booted: [12, 101] }, 3, original)).toBeUndefined();
    expect(stepWaitsFor('TTOU', { workers: workers(11, 12, 101, 105), booted: [11, 12, 101] }, 3, original)).toBe('4 workers, want 3');
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
