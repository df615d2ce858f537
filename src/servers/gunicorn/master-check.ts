import { MasterCheckError } from '../../errors.js';
import type { MasterLocator, PidfileFacts, ProcessFacts } from './process-facts.js';
import type { UnitFacts } from './systemd-unit.js';

/** A gunicorn master verified to belong to this app, with what we need to signal and follow it. */
export interface GunicornMaster {
  pid: number;
  startTime: string;
  /** The interpreter checks run with: /proc/<pid>/exe until GunicornServer.inspect finds the real one (interpreter.ts). */
  python: string;
  /** How `python` was found, for the log. */
  pythonFrom?: string;
  argv: string[];
  /** Real directory the master runs in (a release directory). */
  cwd: string;
  workers: number[];
  /** True when gunicorn daemonized itself (double fork, re-parented to init): WINCH works only then. */
  daemonized: boolean;
  /** The app spec from a setproctitle title (`gunicorn: master [app:application]`), if titled. */
  titledApp?: string;
  /** The systemd service that located the master (the service input), as systemd described it. */
  unit?: UnitFacts;
}

/**
 * Whether a process is gunicorn itself: titled by setproctitle (`gunicorn: master [...]`), or
 * a Python running the gunicorn script or `-m gunicorn`. Only the program and its script
 * count: a shell whose `-c` text or a log path mentions gunicorn is not gunicorn.
 */
export function isGunicorn(process: ProcessFacts): boolean {
  const [first = '', ...rest] = process.argv;
  if (first.startsWith('gunicorn: ')) return true;
  if (basename(first) === 'gunicorn') return true;
  if (!/^python[\d.]*$/.test(basename(first))) return false;
  for (let index = 0; index < rest.length; index += 1) {
    const arg = rest[index] ?? '';
    if (arg === '-m') return rest[index + 1] === 'gunicorn';
    if (!arg.startsWith('-')) return basename(arg) === 'gunicorn';
  }
  return false;
}

function basename(path: string): string {
  return path.split('/').pop() ?? '';
}

function title(process: ProcessFacts): string | undefined {
  const first = process.argv[0] ?? '';
  return first.startsWith('gunicorn: ') ? first : undefined;
}

/**
 * Decides whether the pidfile (or the service's MainPID) names a live gunicorn master of the
 * app in `appDir`. Every refusal says what was found and what to do, because a wrong guess here
 * would signal a stranger's process. A master with no worker is refused, unless settle knows
 * it as one a run retired with WINCH (`how.retired`).
 */
export function verifyMaster(facts: PidfileFacts, locator: MasterLocator, host: string, how: { retired?: boolean } = {}): GunicornMaster {
  const fail = (message: string): never => {
    throw new MasterCheckError(message, host);
  };
  const { pidfile, service } = locator;
  const from = service ? `${service}'s MainPID` : pidfile;
  if (!facts.pid) {
    if (service) {
      const state = facts.unit ? `ActiveState=${facts.unit.activeState || 'unknown'}` : 'systemctl did not answer for it';
      fail(`service ${service} has no main process (${state}). Start it (systemctl start ${service}; a socket-activated service starts on its first request), then deploy: the action reloads a running server; it never starts one.`);
    }
    fail(`pidfile ${pidfile} is missing or empty. Is gunicorn running with 'pidfile = "${pidfile}"'? The action reloads a running server; it never starts one.`);
  }
  const master = facts.master;
  if (!master) return fail(`${from} names pid ${facts.pid}, which is not running${service ? '' : ' (a stale pidfile)'}. Start gunicorn, then deploy.`);
  if (!master.exe || !master.cwd) {
    fail(`cannot read /proc/${master.pid} as the SSH user: deploy as the user that runs gunicorn, or as root${service ? ', or set become: to the service\'s User=' : ''}.`);
  }
  if (!isGunicorn(master)) {
    fail(`pid ${master.pid} from ${from} is not gunicorn (it runs '${master.argv.join(' ').slice(0, 120)}')${service ? '' : ': the pidfile is stale and the pid was reused'}. Nothing was signalled.`);
  }
  const masterTitle = title(master);
  if (masterTitle?.startsWith('gunicorn: worker')) fail(`pid ${master.pid} from ${from} is a gunicorn worker, not the master.`);
  if (facts.parent && isGunicorn(facts.parent)) {
    fail(`pid ${master.pid} from ${from} is the child of gunicorn pid ${facts.parent.pid}: it is a worker or the new master of an unfinished USR2 upgrade, not a settled master.`);
  }
  if (facts.upgrade && isGunicorn(facts.upgrade)) {
    fail(`an upgrade is in progress: ${facts.unit?.pidFile || pidfile}.2 names live gunicorn pid ${facts.upgrade.pid}. Let it finish or revert it (HUP the old master, then TERM pid ${facts.upgrade.pid}) before deploying.`);
  }
  const releasesDir = `${facts.appDirReal}/releases/`;
  if (!facts.appDirReal || !(`${master.cwd}/`.startsWith(releasesDir))) {
    fail(`pid ${master.pid} runs in ${master.cwd}, not in a release under ${releasesDir}: it is not this app's master (or gunicorn was not started from '<app-dir>/current').`);
  }
  // A master this app's run retired with WINCH (`how.retired`: settle read its record) has none, and only a HUP brings them back.
  if (master.children.length === 0 && !how.retired) fail(`gunicorn master ${master.pid} has no workers: it is still booting or halting; not touching it.`);
  return {
    pid: master.pid,
    startTime: master.startTime,
    python: master.exe,
    argv: master.argv,
    cwd: master.cwd,
    workers: master.children,
    daemonized: master.ppid === 1 && master.sid !== master.pid && master.pgid !== master.pid,
    titledApp: masterTitle ? /\[(.*)\]/.exec(masterTitle)?.[1] : undefined,
    unit: facts.unit,
  };
}
