import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log, ReloadHandle, ReloadProgress } from '../server-driver.js';
import { fifoReload } from './fifo-reload.js';
import type { UwsgiInstance } from './instance-check.js';

/** The chain reload's FIFO command. */
export const CHAIN = { command: 'c', what: 'chain reload', repeat: true } as const;

/**
 * chain: master FIFO `c` (needs lazy-apps). uWSGI replaces one worker at a time and moves on
 * once the new one accepts, so capacity stays at N-1 and no request waits for a boot. uWSGI
 * itself would move on from a worker that accepts with no app loaded; the driver does not: the
 * first such worker stops the deploy, and the revert chains every worker back.
 */
export function chainReload(host: RemoteHost, instance: UwsgiInstance, timeoutSeconds: number, log: Log, signal?: AbortSignal, progress?: ReloadProgress): Promise<ReloadHandle<UwsgiInstance>> {
  if (instance.workers.length === 1) {
    log('warning: one worker (processes = 1): while it is replaced nothing on this host serves, requests wait for its boot. Run at least two for a chain reload.');
  }
  return fifoReload(host, instance, { ...CHAIN, timeoutSeconds, signal, progress }, log);
}
