import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log, ReloadHandle, ReloadProgress } from '../server-driver.js';
import { signal, waitForGeneration } from './generation.js';
import type { GunicornMaster } from './master-check.js';

export interface HupOptions {
  timeoutSeconds: number;
  /** Workers the new generation must have: the new release's configured count (HUP re-reads it). */
  workers: number;
  /** How long an old worker may finish its request after HUP TERMs it (graceful_timeout + margin). */
  stopSeconds: number;
  /** Hears the HUP go out and the new workers come up (the forward reload only). */
  progress?: ReloadProgress;
}

/**
 * HUP: the master re-reads its config and replaces all workers at once, importing from
 * `current`. Requests wait while the new workers boot; a boot failure halts the master,
 * which is why the import preflight runs before the switch.
 */
export async function hupReload(host: RemoteHost, master: GunicornMaster, options: HupOptions, log: Log): Promise<ReloadHandle<GunicornMaster>> {
  // New workers boot while the old ones finish their requests: both must be done in time.
  const timeoutSeconds = Math.max(options.timeoutSeconds, options.stopSeconds);
  const replaceWorkers = async (old: number[], count: number, progress?: ReloadProgress): Promise<GunicornMaster> => {
    await signal(host, master, 'HUP', log);
    progress?.('signalled');
    const facts = await waitForGeneration(host, master, { old, count, timeoutSeconds });
    progress?.('booted');
    log(`master ${master.pid}: workers ${old.join(', ')} replaced by ${facts.children.join(', ')}`);
    return { ...master, workers: facts.children };
  };
  const reloaded = await replaceWorkers(master.workers, options.workers, options.progress);
  return {
    master: reloaded,
    commit: async () => reloaded,
    // `current` points to the previous release again, whose config gave the master its count.
    revert: () => replaceWorkers(reloaded.workers, master.workers.length),
  };
}
