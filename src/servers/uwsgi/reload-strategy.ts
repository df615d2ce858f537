import type { RemoteHost } from '../../remote/remote-host.js';
import type { Log, ReloadHandle, ReloadProgress } from '../server-driver.js';
import { fifoReload } from './fifo-reload.js';
import type { UwsgiInstance } from './instance-check.js';

/** The graceful reload's FIFO command. */
export const GRACEFUL = { command: 'r', what: 'graceful reload', repeat: false } as const;

/**
 * reload: master FIFO `r`, uWSGI's graceful reload. Every worker finishes its requests, then the
 * master re-executes itself (same pid, same listening socket) and forks a new set: requests
 * wait in the listen backlog for the whole boot, so it suits fast-booting apps. Gated like
 * chain: every new worker must accept with its app loaded.
 */
export function gracefulReload(host: RemoteHost, instance: UwsgiInstance, timeoutSeconds: number, log: Log, signal?: AbortSignal, progress?: ReloadProgress): Promise<ReloadHandle<UwsgiInstance>> {
  return fifoReload(host, instance, { ...GRACEFUL, timeoutSeconds, signal, progress }, log);
}
