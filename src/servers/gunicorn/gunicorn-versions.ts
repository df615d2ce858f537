/**
 * What differs between the gunicorn releases the action supports, read where it matters.
 * Each was checked in gunicorn's own source (arbiter.py, workers/workertmp.py) of that release.
 */

/** Gunicorn releases the end-to-end suite deploys to (Debian 12's 20.1 and upstream releases). */
export const TESTED_GUNICORN_VERSIONS = ['20.1', '21.2', '23.0', '26.1'] as const;

/**
 * A worker's heartbeat file as /proc shows it: the unlinked `wgunicorn-*` temp file the master
 * creates (mode 600, wall-clock times) before forking the worker.
 */
export interface HeartbeatFile {
  /** Octal permission bits, as `stat -c %a` prints them. */
  mode: string;
  /** Modification time in whole seconds (`stat -c %Y`). */
  mtime: number;
}

interface Heartbeat {
  versions: string;
  how: string;
  /** True once the worker called notify() at least once, i.e. reached its request loop. */
  beaten(file: HeartbeatFile, uptimeSeconds: number): boolean;
}

/**
 * The worker's first notify() comes after the app is loaded and post_worker_init ran, so a
 * heartbeat seen at all means "booted". Both ways are checked: the version is not known here,
 * and neither can be mistaken for the other.
 */
export const HEARTBEATS: readonly Heartbeat[] = [
  {
    versions: '< 22.0',
    how: 'os.fchmod(fd, 0 or 1): the mode leaves 600',
    beaten: (file) => file.mode === '0' || file.mode === '1',
  },
  {
    // The mode stays 600; utime writes time.monotonic(), seconds since boot, over the file's
    // wall-clock mtime. /proc/uptime counts from boot too (and includes suspend, so it is never
    // behind the monotonic clock); a wall-clock mtime is decades larger than any uptime.
    versions: '>= 22.0',
    how: 'os.utime(fd, time.monotonic()): the mtime drops to seconds since boot',
    beaten: (file, uptimeSeconds) => file.mtime <= uptimeSeconds + 1,
  },
];

/** Whether a worker's heartbeat file shows at least one heartbeat, whatever the gunicorn version. */
export function hasHeartbeat(file: HeartbeatFile, uptimeSeconds: number): boolean {
  return HEARTBEATS.some((heartbeat) => heartbeat.beaten(file, uptimeSeconds));
}
