import type { GunicornStrategy } from '../../config/settings.js';
import type { GunicornConfig } from './gunicorn-commands.js';
import type { GunicornMaster } from './master-check.js';

/**
 * Why a strategy cannot do its job with this gunicorn, or undefined when it can. Checked
 * before anything is switched, because each of these fails in a way that hurts:
 * - HUP and TTIN fork workers from the master, so with preload_app they keep serving the
 *   code the master imported at start: the deploy would "succeed" with old code.
 * - WINCH is ignored unless gunicorn daemonized itself, so USR2 could never retire the old
 *   workers (and a supervisor restarts a foreground master that exits).
 * - Under a systemd service (`systemdUnit`, see service-cgroup.ts), the USR2 commit loses
 *   systemd the main pid, and its cgroup kill takes the new master down after the gate passed
 *   (gunicorn #2856): the host would go dark after a "successful" deploy.
 */
export function strategyProblem(strategy: GunicornStrategy, config: GunicornConfig | undefined, master: GunicornMaster, systemdUnit?: string): string | undefined {
  if ((strategy === 'hup' || strategy === 'rolling') && config?.preload_app) {
    return `preload_app is on: ${strategy === 'hup' ? 'HUP' : 'TTIN'} forks workers from the master's already-loaded code, so the new release would never be served. Use strategy: usr2.`;
  }
  if (strategy === 'usr2' && systemdUnit) {
    return `gunicorn runs in the systemd service ${systemdUnit}: when the old master exits at the USR2 commit, systemd loses its main pid and stops the whole service, new master included (gunicorn #2856). Use strategy: rolling (or hup), which keeps the master systemd knows.`;
  }
  // --daemon is often on the command line; without the master's arguments the process tree tells.
  const daemonized = config?.source === 'argv' ? config.daemon : master.daemonized;
  if (strategy === 'usr2' && !daemonized) {
    return 'gunicorn runs in the foreground (not daemonized): it ignores WINCH, so USR2 cannot retire the old workers, and a supervisor would restart the old master when it exits. Use strategy: rolling (or hup), or run gunicorn with daemon = True.';
  }
  return undefined;
}
