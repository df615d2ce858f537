import type { GunicornStrategy } from '../../config/settings.js';
import { PreflightError, RemoteCommandError } from '../../errors.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log, ReloadHandle, ServerDriver, ServerProcess } from '../server-driver.js';
import { interpreterOf, preflightCommand } from './gunicorn-commands.js';
import { hupReload } from './hup-strategy.js';
import { verifyMaster, type GunicornMaster } from './master-check.js';
import { inspectPidfileCommand, parsePidfileFacts } from './process-facts.js';

export interface GunicornOptions {
  pidfile: string;
  appDir: string;
  strategy: GunicornStrategy;
  reloadTimeoutSeconds: number;
  /** App spec for the import check when the master's argv is hidden by setproctitle. */
  appSpec?: string;
}

type Strategy = (host: RemoteHost, master: GunicornMaster, options: GunicornOptions, log: Log) => Promise<ReloadHandle>;

const STRATEGIES: Record<GunicornStrategy, Strategy | undefined> = {
  hup: (host, master, options, log) => hupReload(host, master, options.reloadTimeoutSeconds, log),
  usr2: undefined,
  rolling: undefined,
};

/** Gunicorn, driven through its master's signals. */
export class GunicornServer implements ServerDriver {
  constructor(private readonly options: GunicornOptions) {}

  async inspect(host: RemoteHost): Promise<GunicornMaster & ServerProcess> {
    const result = await host.exec('inspect the gunicorn master', inspectPidfileCommand(this.options.pidfile, this.options.appDir));
    const master = verifyMaster(parsePidfileFacts(result.stdout), this.options.pidfile, host.name);
    return { ...master, python: interpreterOf(master) };
  }

  async preflight(host: RemoteHost, server: ServerProcess, releaseDir: string): Promise<void> {
    const master = server as GunicornMaster;
    try {
      await host.exec('import check of the new release', preflightCommand(master, releaseDir, this.options.appSpec), {
        timeoutSeconds: this.options.reloadTimeoutSeconds,
      });
    } catch (error) {
      if (!(error instanceof RemoteCommandError)) throw error;
      throw new PreflightError(
        `the new release in ${releaseDir} cannot be loaded by the master's interpreter (${master.python}); nothing was switched or reloaded:\n${error.stderrTail}`,
        host.name,
      );
    }
  }

  async reload(host: RemoteHost, server: ServerProcess, log: Log): Promise<ReloadHandle> {
    const strategy = STRATEGIES[this.options.strategy];
    if (!strategy) throw new PreflightError(`strategy '${this.options.strategy}' is not available yet`, host.name);
    return strategy(host, server as GunicornMaster, this.options, log);
  }
}
