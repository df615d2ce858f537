import { sh, type ShellFragment } from '../../remote/shell-quote.js';

/** What systemd says about the service gunicorn runs in (`systemctl show`). */
export interface UnitFacts {
  name: string;
  /** Type= (simple, exec, notify, forking, ...). */
  type: string;
  /** PIDFile= ('' when unset): where systemd looks for a new main pid when the main process exits. */
  pidFile: string;
  /** Units that start this one: a `.socket` here means gunicorn gets its listening sockets from systemd. */
  triggeredBy: string[];
  activeState: string;
  /** 0 when systemd knows no main process. */
  mainPid: number;
}

/** The properties read, in the order printed. */
const PROPERTIES = ['Type', 'PIDFile', 'TriggeredBy', 'ActiveState', 'MainPID'] as const;

/**
 * Prints the unit's facts as `<prefix>.<Property>=<value>` lines (nothing when systemctl is
 * missing or the unit unknown). `systemctl show` works for any user: no sudo rule is needed.
 */
export function unitFactsCommand(service: string, prefix = 'unit'): ShellFragment {
  return sh`systemctl show ${PROPERTIES.map((name) => `--property=${name}`)} -- ${service} 2>/dev/null | sed ${`s/^/${prefix}./`}; printf '%s.Name=%s\\n' ${prefix} ${service}`;
}

/** Parses what unitFactsCommand printed, or undefined when systemd did not answer for the unit. */
export function parseUnitFacts(values: ReadonlyMap<string, string>, prefix = 'unit'): UnitFacts | undefined {
  const name = values.get(`${prefix}.Name`);
  const type = values.get(`${prefix}.Type`);
  if (!name || type === undefined) return undefined;
  return {
    name,
    type,
    pidFile: values.get(`${prefix}.PIDFile`) ?? '',
    triggeredBy: (values.get(`${prefix}.TriggeredBy`) ?? '').split(/\s+/).filter(Boolean),
    activeState: values.get(`${prefix}.ActiveState`) ?? '',
    mainPid: Number(values.get(`${prefix}.MainPID`) ?? 0) || 0,
  };
}

/** The unit lines that let systemd follow a USR2 upgrade, for the messages below. */
export function usr2UnitChange(unit: Pick<UnitFacts, 'name'>): string {
  return (
    `For usr2, run gunicorn daemonized under a forking unit that names its pidfile: in ${unit.name} set Type=forking, ` +
    'PIDFile=/run/gunicorn/gunicorn.pid and ExecStart=... --daemon --pid /run/gunicorn/gunicorn.pid --bind unix:/run/gunicorn/gunicorn.sock ' +
    '(gunicorn binds its own socket: no .socket unit), keep RuntimeDirectory=gunicorn, then daemon-reload and restart once. ' +
    'The action then hands the pidfile to the new master before the old one exits, and systemd follows it.'
  );
}

/**
 * Why systemd cannot follow a USR2 upgrade of gunicorn in this unit, or undefined when it can.
 * Checked against systemd 252 and gunicorn 20.1-26.1 (see docs/systemd.md):
 * - Socket activation: gunicorn moves systemd's socket off fd 3 when it starts (sock.py dups the
 *   fd and closes 3), yet tells the USR2 child LISTEN_FDS starting at fd 3: the new master
 *   fails with "Socket operation on non-socket" (or takes a wrong fd).
 * - Any type but forking: systemd follows only its main pid. At the commit the old master (the
 *   main pid) exits, systemd stops the service and kills its cgroup, new master included
 *   (gunicorn #2856). NotifyAccess=all does not help: gunicorn never sends MAINPID=.
 * - forking: when the main pid exits, systemd reads PIDFile= for the new one (service.c: "forking
 *   services may occasionally move to a new PID"). It must be gunicorn's pidfile, because the
 *   action writes the new master's pid there before TERMing the old one.
 */
export function usr2UnitProblem(unit: UnitFacts, gunicornPidfile: string | null | undefined): StrategyProblem | undefined {
  const keepMaster = 'Use strategy: rolling or hup, which keep the master.';
  const sockets = unit.triggeredBy.filter((name) => name.endsWith('.socket'));
  if (sockets.length) {
    return {
      reason:
        `gunicorn gets its listening socket from ${sockets.join(', ')} (socket activation): gunicorn hands a USR2 master the wrong file descriptors ` +
        "(it moves systemd's socket off fd 3 at start), so the new master cannot start.",
      instead: keepMaster,
      change: usr2UnitChange(unit),
    };
  }
  if (unit.type !== 'forking') {
    return {
      reason: `${unit.name} is Type=${unit.type || 'simple'}: systemd follows only its main pid, so when the old master exits at the USR2 commit it stops the service and kills the new master with it.`,
      instead: keepMaster,
      change: usr2UnitChange(unit),
    };
  }
  if (!unit.pidFile) return { reason: `${unit.name} is Type=forking without PIDFile=: systemd cannot learn the new master's pid.`, change: usr2UnitChange(unit) };
  if (gunicornPidfile && gunicornPidfile !== unit.pidFile) {
    return { reason: `${unit.name} has PIDFile=${unit.pidFile} but gunicorn writes ${gunicornPidfile}: they must be the same file for systemd to follow the new master.`, change: usr2UnitChange(unit) };
  }
  return undefined;
}

/**
 * Why a strategy cannot work on a host, in three parts, so that a message naming two refused
 * strategies can leave out each one's advice to use the other: what goes wrong, the other
 * strategy to use, the change to the server that would make this one work.
 */
export interface StrategyProblem {
  reason: string;
  instead?: string;
  change?: string;
}

/** A problem as one message: what goes wrong, then the ways out. */
export function problemText(problem: StrategyProblem): string {
  return [problem.reason, problem.instead, problem.change].filter(Boolean).join(' ');
}
