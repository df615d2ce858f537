import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log, ReloadHandle } from '../server-driver.js';
import { waitForNewWorkers } from './generation.js';
import { signalCommand } from './gunicorn-commands.js';
import type { GunicornMaster } from './master-check.js';

/**
 * HUP: the master re-reads its config and replaces all workers at once, importing from
 * `current`. Requests wait while the new workers boot; a boot failure halts the master,
 * which is why the import preflight runs before the switch.
 */
export async function hupReload(host: RemoteHost, master: GunicornMaster, timeoutSeconds: number, log: Log): Promise<ReloadHandle> {
  const replaceWorkers = async (oldWorkers: number[]): Promise<GunicornMaster> => {
    await host.exec('send HUP to the gunicorn master', signalCommand(master.pid, master.startTime, 'HUP'));
    log(`HUP sent to master ${master.pid}; waiting for ${master.workers.length} new workers to replace ${oldWorkers.join(', ')}`);
    const workers = await waitForNewWorkers(host, master.pid, master.startTime, oldWorkers, master.workers.length, timeoutSeconds);
    log(`master ${master.pid} now runs workers ${workers.join(', ')}`);
    return { ...master, workers };
  };
  const reloaded = await replaceWorkers(master.workers);
  return {
    master: reloaded,
    commit: async () => reloaded,
    revert: () => replaceWorkers(reloaded.workers),
  };
}
