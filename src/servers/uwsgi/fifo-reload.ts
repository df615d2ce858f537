import { ReloadError, errorMessage } from '../../errors.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { PROCESS_POLL, pollUntil } from '../../poll.js';
import { ReloadFailure, type Log, type ReloadHandle, type ReloadProgress } from '../server-driver.js';
import type { UwsgiInstance } from './instance-check.js';
import { retireEmptyWorkers } from './empty-workers.js';
import { readStats } from './stats-reader.js';
import { fifoCommand } from './uwsgi-commands.js';
import { followWorkers } from './worker-follow.js';

/** Writes one master FIFO command to a verified master (re-verified in the same remote shell). */
export async function sendFifo(host: RemoteHost, instance: UwsgiInstance, command: string, log: Log): Promise<void> {
  await host.exec(`write '${command}' to the uWSGI master FIFO`, fifoCommand(instance, instance.fifo, command));
  log(`'${command}' → ${instance.fifo} (master ${instance.pid})`);
}

export interface FifoReload {
  /** The master FIFO command: `c` chain reload, `r` graceful reload. */
  command: string;
  what: string;
  /** Repeat the command when nothing moves (a chain request is ignored while another chain runs). */
  repeat: boolean;
  timeoutSeconds: number;
  /** The run's cancellation: stops the forward wait (the revert in the failure's handle takes none). */
  signal?: AbortSignal;
  /** Hears the command go out and the new workers serve. */
  progress?: ReloadProgress;
}

/**
 * A reload through the master FIFO, followed worker by worker until every worker alive before
 * it was replaced by one serving its app. Its revert (after `current` points back) is the same
 * reload again, until every worker serves the previous release.
 */
export async function fifoReload(host: RemoteHost, instance: UwsgiInstance, reload: FifoReload, log: Log): Promise<ReloadHandle<UwsgiInstance>> {
  const replaceAll = (what: string, reverting = false) => replaceWorkers(host, instance, reload, log, what, reverting);
  const handle = (master: UwsgiInstance): ReloadHandle<UwsgiInstance> => ({
    master,
    commit: async () => master,
    revert: () => replaceAll(`${reload.what} back to the previous release`, true),
  });
  try {
    return handle(await replaceAll(reload.what));
  } catch (error) {
    log(`${reload.what} stopped: ${errorMessage(error)}`);
    // Workers of both releases may serve now: reverting replaces every worker again.
    throw new ReloadFailure(error as Error, host.name, false, handle(instance));
  }
}

/**
 * Replaces every worker alive now with one serving its app from what `current` names, by the
 * reload's FIFO command. `reverting` (a revert, or settling a host): workers without an app go
 * first, the run's cancellation is not taken, and a master still re-executing is waited for.
 */
export async function replaceWorkers(host: RemoteHost, instance: UwsgiInstance, reload: FifoReload, log: Log, what: string, reverting: boolean): Promise<UwsgiInstance> {
  // A revert may come while a cancelled graceful reload re-executes the master: its stats server answers again after.
  const before = reverting ? await pollUntil(() => readStats(host, instance.python, instance.stats), { timeoutMs: reload.timeoutSeconds * 1000, ...PROCESS_POLL }) : await readStats(host, instance.python, instance.stats);
  if (!before) throw new ReloadError(`the uWSGI stats server ${instance.stats} does not answer.`, host.name);
  // Reverting: a worker without an app serves only errors; it goes first, not in its turn.
  if (reverting) await retireEmptyWorkers(host, instance, before, log);
  const replaced = before.workers.map((worker) => worker.pid).filter((pid) => pid > 0);
  await sendFifo(host, instance, reload.command, log);
  if (!reverting) reload.progress?.('signalled');
  const nudge = reload.repeat ? () => sendFifo(host, instance, reload.command, log) : undefined;
  const workers = await followWorkers(host, instance, { replaced, timeoutSeconds: reload.timeoutSeconds, nudge, what, signal: reverting ? undefined : reload.signal }, log);
  if (!reverting) reload.progress?.('booted');
  log(`${what} done: workers ${replaced.join(', ')} replaced by ${workers.map((worker) => worker.pid).join(', ')}`);
  return { ...instance, workers: workers.map((worker) => worker.pid) };
}
