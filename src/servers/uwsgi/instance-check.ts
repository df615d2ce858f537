import { MasterCheckError } from '../../errors.js';
import type { PidfileFacts, ProcessFacts } from '../gunicorn/process-facts.js';
import type { ServerProcess } from '../server-driver.js';
import type { UwsgiSettings } from './uwsgi-options.js';

/**
 * A uWSGI master verified to belong to this app, with what the driver needs to command and
 * follow it. `python` is the instance's (`<home>/bin/python` of its virtualenv, else python3).
 */
export interface UwsgiInstance extends ServerProcess {
  /** Kernel start time: with the pid, names the master across pid reuse. */
  startTime: string;
  argv: string[];
  /** Real directory the master runs in. */
  cwd: string;
  settings: UwsgiSettings;
  /** Absolute paths (or a stats host:port) resolved against the master's cwd. */
  fifo: string;
  stats: string;
}

/** Whether a process is uWSGI: Debian's /usr/bin/uwsgi resolves to uwsgi-core; argv[0] may be a procname. */
export function isUwsgi(process: ProcessFacts): boolean {
  return /^uwsgi/.test(basename(process.exe)) || basename(process.argv[0] ?? '') === 'uwsgi';
}

/**
 * The process part of the verification: the pidfile names a live uWSGI that is not a child of
 * another uWSGI (a worker) and runs in this app's directory. Every refusal says what was found,
 * because a wrong guess here would command a stranger's server.
 */
export function verifyProcess(facts: PidfileFacts, pidfile: string, appDir: string, host: string): ProcessFacts {
  const fail = (message: string): never => {
    throw new MasterCheckError(message, host);
  };
  if (!facts.pid) fail(`pidfile ${pidfile} is missing or empty. Is uWSGI running with 'pidfile = ${pidfile}'? The action reloads a running server; it never starts one.`);
  const master = facts.master;
  if (!master) return fail(`pidfile ${pidfile} names pid ${facts.pid}, which is not running (a stale pidfile). Start uWSGI, then deploy.`);
  if (!master.exe || !master.cwd) fail(`cannot read /proc/${master.pid} as the SSH user: deploy as the user that runs uWSGI, or as root.`);
  if (!isUwsgi(master)) {
    fail(`pid ${master.pid} from ${pidfile} is not uWSGI (it runs '${master.argv.join(' ').slice(0, 120)}'): the pidfile is stale and the pid was reused. Nothing was touched.`);
  }
  if (facts.parent && isUwsgi(facts.parent) && facts.parent.exe === master.exe) {
    fail(`pid ${master.pid} from ${pidfile} is the child of uWSGI pid ${facts.parent.pid}: a worker, not the master.`);
  }
  const inside = (path: string) => [appDir, facts.appDirReal].some((dir) => dir && (path === dir || path.startsWith(`${dir}/`)));
  if (!inside(master.cwd)) {
    fail(`pid ${master.pid} runs in ${master.cwd}, outside ${appDir}: it is not this app's uWSGI (start it from the app dir, e.g. with 'chdir = ${appDir}').`);
  }
  if (master.children.length === 0) fail(`uWSGI master ${master.pid} has no workers: it is booting, reloading or stopping; not touching it.`);
  return master;
}

/**
 * What the strategies need from the options: a master, its FIFO and its stats server. Paths are
 * resolved against the master's working directory, as uWSGI resolved them.
 */
export function requireControls(settings: UwsgiSettings, cwd: string, host: string): { fifo: string; stats: string } {
  const missing = [
    settings.master ? undefined : "'master = true'",
    settings.masterFifo ? undefined : "'master-fifo = <app-dir>/run/uwsgi.fifo'",
    settings.stats ? undefined : "'stats = <app-dir>/run/uwsgi-stats.sock'",
  ].filter(Boolean);
  if (missing.length || !settings.masterFifo || !settings.stats) {
    throw new MasterCheckError(`the uWSGI instance lacks ${missing.join(', ')} in its options: the action commands uWSGI through its master FIFO and follows every worker through its stats server.`, host);
  }
  const absolute = (path: string) => (path.startsWith('/') ? path : `${cwd}/${path}`);
  const stats = settings.stats.startsWith('/') || settings.stats.startsWith('@') || settings.stats.includes(':') ? settings.stats : absolute(settings.stats);
  return { fifo: absolute(settings.masterFifo), stats };
}

function basename(path: string): string {
  return path.split('/').pop() ?? '';
}
