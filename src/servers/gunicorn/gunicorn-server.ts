import type { GunicornStrategy, HealthSettings } from '../../config/settings.js';
import { PreflightError, RemoteCommandError, errorMessage } from '../../errors.js';
import { tail } from '../../remote/remote-command.js';
import { waitUntilReady } from '../../health/readiness-gate.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { sh, type ShellFragment } from '../../remote/shell-quote.js';
import type { Log, PointCurrent, ReloadHandle, ReloadProgress, ServerDriver, Settled } from '../server-driver.js';
import { parseCheck, parseConfigs, preflightCommand, readConfigsCommand, type GunicornConfig } from './gunicorn-commands.js';
import { chooseInterpreter, interpreterFactsCommand, parseInterpreterFacts, type InterpreterFacts } from './interpreter.js';
import { hupReload } from './hup-strategy.js';
import { verifyMaster, type GunicornMaster } from './master-check.js';
import { inspectMasterCommand, parsePidfileFacts, valuesOf, type MasterLocator } from './process-facts.js';
import { readyDirOf } from './ready-marks.js';
import { reloadPlan, type ReloadPlan } from './reload-plan.js';
import { rollingReload } from './rolling-strategy.js';
import { settleGunicorn } from './settle.js';
import { cgroupCommand, systemdServiceOf } from './service-cgroup.js';
import { chooseStrategy, type ReloadStrategy } from './strategy-fit.js';
import { parseUnitFacts, unitFactsCommand, type UnitFacts } from './systemd-unit.js';
import { usr2Reload } from './usr2-strategy.js';

export interface GunicornOptions {
  pidfile: string;
  /** The systemd service whose MainPID is the master (no pidfile needed). */
  service?: string;
  appDir: string;
  /** The switch log (layout.switchLog): when `current` changed, to tell worker generations apart. */
  switchLog: string;
  strategy: GunicornStrategy;
  reloadTimeoutSeconds: number;
  /** App spec for the import check when the master's argv is hidden by setproctitle. */
  appSpec?: string;
  /** The interpreter to check with (the python input); found from the master when unset. */
  python?: string;
  /** The readiness gate's settings: settle gates a new master a dead run left ungated. */
  health?: HealthSettings;
}

/** What was decided for one master: the strategy, why, and the systemd unit it runs in (if any). */
interface Decision {
  strategy: ReloadStrategy;
  why: string;
  unit?: UnitFacts;
}

type Strategy = (
  host: RemoteHost,
  master: GunicornMaster,
  unit: UnitFacts | undefined,
  options: GunicornOptions,
  plan: Targets,
  log: Log,
  signal?: AbortSignal,
  progress?: ReloadProgress,
) => Promise<ReloadHandle<GunicornMaster>>;

/** What every strategy takes from the reload plan. */
type Targets = Pick<ReloadPlan, 'workers' | 'stopSeconds'>;

const STRATEGIES: Record<ReloadStrategy, Strategy> = {
  hup: (host, master, _unit, options, plan, log, _signal, progress) =>
    hupReload(host, master, { timeoutSeconds: options.reloadTimeoutSeconds, workers: plan.workers, stopSeconds: plan.stopSeconds, progress }, log),
  // HUP takes no cancellation: once the old workers are being replaced, the new ones must come up before anything else can be done.
  // Under a systemd unit (forking, strategy-fit.ts checked) its PIDFile= is gunicorn's pidfile, handed over at the commit.
  usr2: (host, master, unit, options, plan, log, signal, progress) =>
    usr2Reload(
      host,
      master,
      {
        pidfile: unit?.pidFile || options.pidfile,
        service: options.service,
        handover: unit !== undefined,
        readyDir: readyDirOf(options.pidfile),
        appDir: options.appDir,
        timeoutSeconds: options.reloadTimeoutSeconds,
        workers: plan.workers,
        stopSeconds: plan.stopSeconds,
        signal,
        progress,
      },
      log,
    ),
  rolling: (host, master, _unit, options, plan, log, signal) =>
    rollingReload(host, master, { readyDir: readyDirOf(options.pidfile), timeoutSeconds: options.reloadTimeoutSeconds, workers: plan.workers, stopSeconds: plan.stopSeconds, signal }, log),
};

/** Gunicorn, driven through its master's signals. */
export class GunicornServer implements ServerDriver<GunicornMaster> {
  /**
   * Config reads by host, master and release directory (as `<app-dir>/releases/<name>`, or the
   * master's cwd). A staged release does not change, so the read the preflight made (hidden
   * under the import check) serves the reload: one Python start importing gunicorn less per
   * host, after the switch.
   */
  private readonly configs = new Map<string, Promise<GunicornConfig | undefined>>();

  /**
   * What /proc says about a master's interpreter, by host and master (pid and start time): a
   * process's executable and mapped site-packages do not change, so the reload's inspection
   * right before the signal does not read them again.
   */
  private readonly interpreters = new Map<string, InterpreterFacts>();

  /** The strategy decided for each master (by host, pid and start time) by the preflight, or at its first reload. */
  private readonly decisions = new Map<string, Decision>();

  constructor(private readonly options: GunicornOptions) {}

  private get locator(): MasterLocator {
    return { pidfile: this.options.pidfile, service: this.options.service };
  }

  async inspect(host: RemoteHost): Promise<GunicornMaster> {
    const result = await host.exec('inspect the gunicorn master', inspectMasterCommand(this.locator, this.options.appDir));
    const master = verifyMaster(parsePidfileFacts(result.stdout), this.locator, host.name);
    const titled = master.titledApp !== undefined || (master.argv[0] ?? '').startsWith('gunicorn:');
    let facts: InterpreterFacts | undefined;
    // One more round trip only when the command line does not name the interpreter.
    if (!this.options.python && (titled || !(master.argv[0] ?? '').startsWith('/'))) facts = await this.interpreterFacts(host, master);
    const found = chooseInterpreter({ pid: master.pid, argv: master.argv, titled, exe: master.python }, facts, this.options.python);
    return { ...master, python: found.python, pythonFrom: found.foundBy };
  }

  async preflight(host: RemoteHost, master: GunicornMaster, releaseDir: string): Promise<void> {
    // One Python start checks the new release (paying the app's boot) and reads gunicorn's config
    // of it and, for a titled master, of the master's own release; the cgroup read runs beside
    // it. Without the master's arguments there is no config to read: the import check runs alone.
    const dirs = master.titledApp === undefined ? [releaseDir] : [releaseDir, master.cwd];
    const together = readConfigsCommand(master, dirs, { releaseDir, appSpec: this.options.appSpec });
    const checked: Promise<Error | undefined> = (together ? this.checkAndRead(host, master, dirs, releaseDir, together) : this.importCheck(host, master, releaseDir)).then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    );
    const [[config], unit] = await Promise.all([checked.then(() => this.readConfigs(host, master, dirs)), this.systemdUnit(host, master)]).finally(() => checked);
    const problem = this.decide(host, master, config, unit);
    const importError = await checked;
    if (problem) throw new PreflightError(`${problem} Nothing was switched or reloaded.`, host.name);
    if (importError) throw importError;
  }

  /** Decides (and keeps) the strategy for this master; returns why none can work, if so. */
  private decide(host: RemoteHost, master: GunicornMaster, config: GunicornConfig | undefined, unit: UnitFacts | undefined): string | undefined {
    const choice = chooseStrategy(this.options.strategy, config, master, unit);
    if ('problem' in choice) return choice.problem;
    this.decisions.set(this.masterKey(host, master), { ...choice, unit });
    return undefined;
  }

  /** The decision the preflight made for this master, or one made now (a settle, a rollback: no preflight ran). */
  private async decisionFor(host: RemoteHost, master: GunicornMaster, config: GunicornConfig | undefined): Promise<Decision> {
    const known = this.decisions.get(this.masterKey(host, master));
    if (known) return known;
    const problem = this.decide(host, master, config, await this.systemdUnit(host, master));
    if (problem) throw new PreflightError(problem, host.name);
    return this.decisions.get(this.masterKey(host, master)) as Decision;
  }

  private masterKey(host: RemoteHost, master: GunicornMaster): string {
    return [host.name, master.pid, master.startTime].join('\0');
  }

  /** The import check and the config reads in one Python start; the reads go to the cache. */
  private async checkAndRead(host: RemoteHost, master: GunicornMaster, dirs: string[], releaseDir: string, command: ShellFragment): Promise<void> {
    const result = await host
      .exec('import check of the new release', command, { timeoutSeconds: this.options.reloadTimeoutSeconds, allowFailure: true })
      .catch((error: unknown) => {
        throw error instanceof RemoteCommandError ? this.notLoadable(host, master, releaseDir, error.stderrTail) : error;
      });
    const source = master.titledApp === undefined ? 'argv' : 'default-file';
    const configs = parseConfigs(result.stdout, dirs.length);
    dirs.forEach((dir, index) => {
      const config = configs[index];
      if (config) this.configs.set(this.keyOf(host, master, dir), Promise.resolve({ ...config, source }));
    });
    if (result.code !== 0 || parseCheck(result.stdout) !== true) throw this.notLoadable(host, master, releaseDir, tail(result.stderr || result.stdout));
  }

  private async importCheck(host: RemoteHost, master: GunicornMaster, releaseDir: string): Promise<void> {
    try {
      await host.exec('import check of the new release', preflightCommand(master, releaseDir, this.options.appSpec), {
        timeoutSeconds: this.options.reloadTimeoutSeconds,
      });
    } catch (error) {
      if (!(error instanceof RemoteCommandError)) throw error;
      throw this.notLoadable(host, master, releaseDir, error.stderrTail);
    }
  }

  private notLoadable(host: RemoteHost, master: GunicornMaster, releaseDir: string, output: string): PreflightError {
    return new PreflightError(`the new release in ${releaseDir} cannot be loaded by the master's interpreter (${master.python}); nothing was switched or reloaded:\n${output}`, host.name);
  }

  /** Reloads into the release `current` points to (the new one, or the previous one on a rollback), with its worker count and graceful_timeout. */
  async reload(host: RemoteHost, master: GunicornMaster, log: Log, signal?: AbortSignal, progress?: ReloadProgress): Promise<ReloadHandle<GunicornMaster>> {
    // The release `current` names, spelled as the preflight spelled it (`<app-dir>/releases/<name>`),
    // so the preflight's reads serve. Without the master's arguments (a titled master: source
    // 'default-file'), its own release's file tells whether files are the whole story.
    const link = (await host.exec('read current', sh`readlink ${`${this.options.appDir}/current`}`)).stdout.trim();
    const current = link.startsWith('/') ? link : `${this.options.appDir}/${link}`;
    const [next, now] = await this.readConfigs(host, master, master.titledApp === undefined ? [current] : [current, master.cwd]);
    const plan = reloadPlan(next, next?.source === 'default-file' ? now : undefined, master.workers.length);
    const decision = await this.decisionFor(host, master, now ?? next);
    if (this.options.strategy === 'auto') log(`strategy auto chose ${decision.strategy}: ${decision.why}`);
    log(`${plan.why}; stop wait ${plan.stopSeconds}s (graceful_timeout + margin)`);
    return STRATEGIES[decision.strategy](host, master, decision.unit, this.options, plan, log, signal, progress);
  }

  /** Repairs what a run that died mid-reload left (settle.ts), reloading with this run's strategy when workers of two releases remain. */
  async settle(host: RemoteHost, pointCurrent: PointCurrent, log: Log): Promise<Settled> {
    const { pidfile, service, appDir, switchLog, reloadTimeoutSeconds } = this.options;
    const reload = async (_stale: GunicornMaster, reloadLog: Log) => this.reload(host, await this.inspect(host), reloadLog);
    const { health } = this.options;
    const readiness = health && ((python: string, release: string) => settleReadiness(host, python, health, release));
    return settleGunicorn(host, { pidfile, service, appDir, switchLog, timeoutSeconds: reloadTimeoutSeconds, reload, readiness }, pointCurrent, log);
  }

  private async interpreterFacts(host: RemoteHost, master: { pid: number; startTime: string }): Promise<InterpreterFacts> {
    const key = [host.name, master.pid, master.startTime].join('\0');
    const known = this.interpreters.get(key);
    if (known) return known;
    const read = await host.exec("find the master's interpreter", interpreterFactsCommand(master.pid), { allowFailure: true });
    const facts = parseInterpreterFacts(read.stdout);
    // Only a read that found the executable is kept: a failed one is tried again next time.
    if (facts.execfn) this.interpreters.set(key, facts);
    return facts;
  }

  /**
   * The systemd service the master runs in, if any, as systemd describes it: the service input's
   * (read with the master), or the one its cgroup names. Only usr2 depends on it.
   */
  private async systemdUnit(host: RemoteHost, master: GunicornMaster): Promise<UnitFacts | undefined> {
    if (master.unit) return master.unit;
    if (this.options.strategy !== 'usr2' && this.options.strategy !== 'auto') return undefined;
    const name = systemdServiceOf((await host.exec('read the master cgroup', cgroupCommand(master.pid))).stdout);
    if (!name) return undefined;
    const shown = await host.exec(`describe ${name}`, unitFactsCommand(name), { allowFailure: true });
    // systemctl missing or silent: a unit systemd would not describe is no unit systemd can follow.
    return parseUnitFacts(valuesOf(shown.stdout)) ?? { name, type: 'unknown', pidFile: '', triggeredBy: [], activeState: '', mainPid: 0 };
  }

  /**
   * Gunicorn's view of its settings for each release dir, by the dirs' order; undefined where it
   * cannot be read (hidden argv, a config that fails). Dirs read before come from the cache; the
   * others are read together, in one Python start.
   */
  private async readConfigs(host: RemoteHost, master: GunicornMaster, releaseDirs: string[]): Promise<(GunicornConfig | undefined)[]> {
    const keyOf = (dir: string) => this.keyOf(host, master, dir);
    const missing = [...new Set(releaseDirs.filter((dir) => !this.configs.has(keyOf(dir))))];
    if (missing.length) {
      const reading = this.readConfigsAfresh(host, master, missing);
      missing.forEach((dir, index) => {
        const key = keyOf(dir);
        const one = reading.then((configs) => configs[index]);
        this.configs.set(key, one);
        // Only a read that worked is kept: a failed one (the connection, say) is tried again next time.
        one.then(
          (config) => config === undefined && this.configs.delete(key),
          () => this.configs.delete(key),
        );
      });
    }
    return Promise.all(releaseDirs.map((dir) => this.configs.get(keyOf(dir)) ?? Promise.resolve(undefined)));
  }

  private keyOf(host: RemoteHost, master: GunicornMaster, dir: string): string {
    return [host.name, master.pid, master.startTime, master.python, dir].join('\0');
  }

  private async readConfigsAfresh(host: RemoteHost, master: GunicornMaster, releaseDirs: string[]): Promise<(GunicornConfig | undefined)[]> {
    const command = readConfigsCommand(master, releaseDirs);
    if (!command) return releaseDirs.map(() => undefined);
    const result = await host.exec('read the gunicorn config', command, { allowFailure: true });
    const source = master.titledApp === undefined ? 'argv' : 'default-file';
    return parseConfigs(result.stdout, releaseDirs.length).map((config) => (config ? { ...config, source } : undefined));
  }
}

/**
 * The readiness gate as a deploy runs it, for settle: why `release` does not pass, or undefined.
 * A version is required when expect-version is always, and must be `release` whenever the app names one.
 */
async function settleReadiness(host: RemoteHost, python: string, health: HealthSettings, release: string): Promise<string | undefined> {
  try {
    const passed = await waitUntilReady(host, python, health, health.expectVersion === 'always' ? release : undefined);
    const named = passed.reading.version;
    return named === undefined || named === release || health.expectVersion === 'never' ? undefined : `it serves version ${named}, expected ${release}`;
  } catch (error) {
    return errorMessage(error);
  }
}
