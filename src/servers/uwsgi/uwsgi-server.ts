import type { UwsgiStrategy } from '../../config/settings.js';
import { MasterCheckError, PreflightError, RemoteCommandError } from '../../errors.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log, PointCurrent, ReloadHandle, ReloadProgress, ServerDriver, Settled } from '../server-driver.js';
import { inspectPidfileCommand, parsePidfileFacts } from '../gunicorn/process-facts.js';
import { CHAIN, chainReload } from './chain-strategy.js';
import { replaceWorkers } from './fifo-reload.js';
import { requireControls, verifyProcess, type UwsgiInstance } from './instance-check.js';
import { GRACEFUL, gracefulReload } from './reload-strategy.js';
import { readStats } from './stats-reader.js';
import { fifoHeldCommand, preflightCommand, readConfigCommand } from './uwsgi-commands.js';
import { optionsOf, parseIni, settingsOf, type OptionList, type UwsgiSettings } from './uwsgi-options.js';
import { settleUwsgi } from './uwsgi-settle.js';

export interface UwsgiOptions {
  pidfile: string;
  appDir: string;
  strategy: UwsgiStrategy;
  reloadTimeoutSeconds: number;
  /** The switch log (release-commands.ts): when `current` changed, to tell which release a worker serves. */
  switchLog: string;
  /** App spec (`module:callable`) for the import check when the options name none. */
  appSpec?: string;
}

/** uWSGI, driven through its master FIFO and followed through its stats server. */
export class UwsgiServer implements ServerDriver<UwsgiInstance> {
  constructor(private readonly options: UwsgiOptions) {}

  async inspect(host: RemoteHost): Promise<UwsgiInstance> {
    const { pidfile, appDir } = this.options;
    const facts = parsePidfileFacts((await host.exec('inspect the uWSGI master', inspectPidfileCommand(pidfile, appDir))).stdout);
    const master = verifyProcess(facts, pidfile, appDir, host.name);
    const settings = await this.readSettings(host, master.argv, master.cwd);
    const { fifo, stats } = requireControls(settings, master.cwd, host.name);
    const held = (await host.exec('check the master FIFO', fifoHeldCommand(master.pid, fifo))).stdout.trim();
    if (held !== 'held') {
      throw new MasterCheckError(`${fifo} (master-fifo) ${held === 'missing' ? 'is not a FIFO' : `is not held open by uWSGI master ${master.pid}`}: it belongs to no running master of this app. Nothing was written to it.`, host.name);
    }
    const python = settings.home ? `${settings.home}/bin/python` : 'python3';
    const reading = await readStats(host, python, stats);
    if (!reading) throw new MasterCheckError(`the stats server ${stats} does not answer (is ${python} the instance's Python?).`, host.name);
    if (reading.pid !== master.pid) throw new MasterCheckError(`the stats server ${stats} belongs to master ${reading.pid}, not to ${master.pid} from ${pidfile}.`, host.name);
    return { pid: master.pid, startTime: master.startTime, python, argv: master.argv, cwd: master.cwd, workers: reading.workers.map((worker) => worker.pid), settings, fifo, stats };
  }

  async preflight(host: RemoteHost, instance: UwsgiInstance, releaseDir: string): Promise<void> {
    const { strategy } = this.options;
    if (strategy === 'chain' && !instance.settings.lazyApps) {
      throw new PreflightError(
        "strategy 'chain' cannot work here: lazy-apps is off, so every chained worker is forked from the master's already-loaded code and the new release would never be served. " +
          "Add 'lazy-apps = true' to the uWSGI options (and restart uWSGI once), or use strategy: reload. Nothing was switched or reloaded.",
        host.name,
      );
    }
    const app = instance.settings.app ?? (this.options.appSpec ? { kind: 'module' as const, target: this.options.appSpec } : undefined);
    if (!app) throw new PreflightError("the uWSGI options name no 'module' or 'wsgi-file' to import-check: set the wsgi-app input. Nothing was switched or reloaded.", host.name);
    const inRelease = (path: string) => throughCurrent(path, this.options.appDir, releaseDir);
    const python = instance.settings.home ? `${inRelease(instance.settings.home)}/bin/python` : instance.python;
    try {
      await host.exec('import check of the new release', preflightCommand({ python, releaseDir, app, pythonpath: instance.settings.pythonpath.map(inRelease) }), {
        timeoutSeconds: this.options.reloadTimeoutSeconds,
      });
    } catch (error) {
      if (!(error instanceof RemoteCommandError)) throw error;
      throw new PreflightError(`the new release in ${releaseDir} cannot be loaded by the instance's Python (${python}); nothing was switched or reloaded:\n${error.stderrTail}`, host.name);
    }
  }

  reload(host: RemoteHost, instance: UwsgiInstance, log: Log, signal?: AbortSignal, progress?: ReloadProgress): Promise<ReloadHandle<UwsgiInstance>> {
    const { strategy, reloadTimeoutSeconds } = this.options;
    const reload = strategy === 'chain' ? chainReload : gracefulReload;
    return reload(host, instance, reloadTimeoutSeconds, log, signal, progress);
  }

  /**
   * Checks what serves (see uwsgi-settle.ts): every worker accepting with its app loaded, on the
   * release `current` names when lazy-apps lets worker ages tell; repairs by pointing `current`
   * at what serves, or replacing every worker (those without an app first).
   */
  settle(host: RemoteHost, pointCurrent: PointCurrent, log: Log): Promise<Settled> {
    const { appDir, switchLog, reloadTimeoutSeconds, strategy } = this.options;
    const spec = { ...(strategy === 'chain' ? CHAIN : GRACEFUL), timeoutSeconds: reloadTimeoutSeconds };
    return settleUwsgi(
      host,
      {
        appDir,
        switchLog,
        timeoutSeconds: reloadTimeoutSeconds,
        inspect: (remote) => this.inspect(remote),
        replaceAll: (remote, instance, say) => replaceWorkers(remote, instance, spec, say, `${spec.what} of every worker`, true),
      },
      pointCurrent,
      log,
    );
  }

  /** The instance's options: its command line with its ini file (read relative to the master's cwd). */
  private async readSettings(host: RemoteHost, argv: string[], cwd: string): Promise<UwsgiSettings> {
    const files = new Map<string, OptionList>();
    const first = optionsOf(argv, () => undefined);
    if (first.configFile) {
      const result = await host.exec('read the uWSGI ini file', readConfigCommand(cwd, first.configFile));
      files.set(first.configFile, parseIni(result.stdout));
    }
    const { options, configFile } = optionsOf(argv, (path) => files.get(path));
    return settingsOf(options, configFile);
  }
}

/** A path through `<app-dir>/current` as it will be once `current` points at `releaseDir`. */
export function throughCurrent(path: string, appDir: string, releaseDir: string): string {
  const link = `${appDir}/current`;
  return path === link || path.startsWith(`${link}/`) ? releaseDir + path.slice(link.length) : path;
}
