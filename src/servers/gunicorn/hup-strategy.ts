import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log, ReloadHandle } from '../server-driver.js';
import { signal, waitForGeneration } from './generation.js';
import type { GunicornMaster } from './master-check.js';

/**
 * HUP: the master re-reads its config and replaces all workers at once, importing from
 * `current`. Requests wait while the new workers boot; a boot failure halts the master,
 * which is why the import preflight runs before the switch.
 */
export async function hupReload(host: RemoteHost, master: GunicornMaster, timeoutSeconds: number, log: Log): Promise<ReloadHandle<GunicornMaster>> {
  const replaceWorkers = async (old: number[]): Promise<GunicornMaster> => {
    await signal(host, master, 'HUP', log);
    const facts = await waitForGeneration(host, master, { old, count: master.workers.length, timeoutSeconds });
    log(`master ${master.pid}: workers ${old.join(', ')} replaced by ${facts.children.join(', ')}`);
    return { ...master, workers: facts.children };
  };
  const reloaded = await replaceWorkers(master.workers);
  return {
    master: reloaded,
    commit: async () => reloaded,
    revert: () => replaceWorkers(reloaded.workers),
  };
}
