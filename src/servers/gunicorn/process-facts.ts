import { raw, sh, type ShellFragment } from '../../remote/shell-quote.js';
import { hasHeartbeat } from './gunicorn-versions.js';
import { parseUnitFacts, unitFactsCommand, type UnitFacts } from './systemd-unit.js';

/** What /proc says about one process. */
export interface ProcessFacts {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** Kernel start time in clock ticks: with the pid, identifies the process across pid reuse. */
  startTime: string;
  exe: string;
  cwd: string;
  argv: string[];
  children: number[];
  /**
   * Children that reached their request loop: gunicorn gives each worker an unlinked
   * `wgunicorn-*` heartbeat file, and the worker's first notify() (right after booting the app
   * and post_worker_init) changes it in a way that depends on the version (gunicorn-versions.ts).
   */
  booted: number[];
}

/** The facts gathered about a pidfile in one round trip. */
export interface PidfileFacts {
  /** Pid written in the pidfile, if any. */
  pid?: number;
  master?: ProcessFacts;
  parent?: ProcessFacts;
  /** A live process named by `<pidfile>.2`: a USR2 upgrade in progress. */
  upgrade?: ProcessFacts;
  upgradePid?: number;
  /** `readlink -f` of the app dir, to compare with the master's cwd. */
  appDirReal: string;
  /** The systemd service's facts, when the master was located by its service. */
  unit?: UnitFacts;
}

/**
 * The shell functions that read a process's facts. `d <pid> <prefix> [nochildren]` prints them
 * as `<prefix>.<key>=<value>` lines; `st <pid>` sets `$t` to its start time. They run at every
 * boot poll of every host, so they fork little: /proc/<pid>/stat and /proc/uptime are read with
 * the shell's own `read`, the children come from the kernel's `children` lists (`ps` where a
 * kernel has none), and each child's heartbeat file is found by one `find`.
 */
const DESCRIBE = raw(
  `st() { t=; read -r s < "/proc/$1/stat" 2>/dev/null || return 0; set -- \${s##*) }; t=\${20}; }; ` +
    `d() { p=$1; [ -n "$p" ] && [ -r "/proc/$p/stat" ] || return 0; read -r s < "/proc/$p/stat" 2>/dev/null || return 0; ` +
    `printf '%s.stat=%s\\n' "$2" "\${s##*) }"; ` +
    `printf '%s.exe=%s\\n' "$2" "$(readlink /proc/$p/exe)"; ` +
    `printf '%s.cwd=%s\\n' "$2" "$(readlink /proc/$p/cwd)"; ` +
    `printf '%s.argv=%s\\n' "$2" "$(tr '\\000\\n' '\\037 ' < /proc/$p/cmdline)"; ` +
    `read -r u _ < /proc/uptime; printf '%s.uptime=%s\\n' "$2" "$u"; ` +
    // Each child as pid:mode:mtime of its heartbeat file (empty for a child without one).
    `if [ "$3" != nochildren ]; then printf '%s.children=' "$2"; ` +
    `if [ -r "/proc/$p/task/$p/children" ]; then k=$(cat /proc/$p/task/*/children 2>/dev/null); else k=$(ps -o pid= --ppid "$p"); fi; ` +
    `for c in $k; do m=$(find /proc/$c/fd -lname '*wgunicorn-*' -exec stat -L -c %a:%Y {} \\; -quit 2>/dev/null); printf '%s:%s ' "$c" "\${m:-:}"; done; echo; fi; ` +
    `printf '%s.pid=%s\\n' "$2" "$p"; }`,
);

/** Where a master's pid is read: its pidfile, or the MainPID of the systemd service it runs in. */
export interface MasterLocator {
  /** The pidfile; with a service, where a `.2` upgrade master is looked for when the unit names no PIDFile=. */
  pidfile: string;
  /** A systemd service (`gunicorn.service`): its MainPID is the master, its facts come along (`unit.*`). */
  service?: string;
}

/** Reads a pidfile's pid and describes it, its parent and any `.2` upgrade master. */
export function inspectPidfileCommand(pidfile: string, appDir: string): ShellFragment {
  return describeMaster(sh`pf=${pidfile}; pid=$(tr -dc 0-9 < "$pf" 2>/dev/null)`, appDir);
}

/**
 * Like inspectPidfileCommand, with the pid from where the locator says: a service's MainPID (0,
 * no main process, prints as empty), its facts as `unit.*` lines, and `.2` beside its PIDFile=.
 */
export function inspectMasterCommand(locator: MasterLocator, appDir: string): ShellFragment {
  if (!locator.service) return inspectPidfileCommand(locator.pidfile, appDir);
  const find = sh`u=$(${unitFactsCommand(locator.service)}); printf '%s\n' "$u"; pid=$(printf '%s\n' "$u" | sed -n 's/^unit.MainPID=//p'); [ "$pid" = 0 ] && pid=; pf=$(printf '%s\n' "$u" | sed -n 's/^unit.PIDFile=//p'); [ -n "$pf" ] || pf=${locator.pidfile}`;
  return describeMaster(find, appDir);
}

/** The inspection once `find` has set `$pid` (the master's) and `$pf` (the pidfile whose `.2` marks an upgrade). */
function describeMaster(find: ShellFragment, appDir: string): ShellFragment {
  return sh`${DESCRIBE}; ${find}; printf 'pidfile=%s\n' "$pid"; d "$pid" master; [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && d "$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f2)" parent nochildren; up=$(tr -dc 0-9 < "$pf.2" 2>/dev/null); printf 'pidfile2=%s\n' "$up"; d "$up" upgrade; printf 'appdir=%s\n' "$(readlink -f ${appDir})"`;
}

/** Lists the children of a pid, only while that pid is still the process started at `startTime`. */
export function childrenCommand(pid: number, startTime: string): ShellFragment {
  return sh`${DESCRIBE}; st ${pid}; [ "$t" = ${startTime} ] && d ${pid} master; true`;
}

/** The `key=value` lines of a command's output (the first `=` splits). */
export function valuesOf(stdout: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) values.set(line.slice(0, at), line.slice(at + 1));
  }
  return values;
}

export function parsePidfileFacts(stdout: string): PidfileFacts {
  const values = valuesOf(stdout);
  const numberOf = (key: string): number | undefined => {
    const value = values.get(key);
    return value ? Number(value) : undefined;
  };
  return {
    pid: numberOf('pidfile'),
    master: processFrom(values, 'master'),
    parent: processFrom(values, 'parent'),
    upgrade: processFrom(values, 'upgrade'),
    upgradePid: numberOf('pidfile2'),
    appDirReal: values.get('appdir') ?? '',
    unit: parseUnitFacts(values),
  };
}

function processFrom(values: Map<string, string>, prefix: string): ProcessFacts | undefined {
  const stat = values.get(`${prefix}.stat`);
  const pid = values.get(`${prefix}.pid`);
  if (!stat || !pid) return undefined;
  // After "pid (comm) ": state ppid pgrp session ... starttime is the 20th field.
  const fields = stat.trim().split(/\s+/);
  const children = (values.get(`${prefix}.children`) ?? '')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((item) => {
      const [pid = '', mode = '', mtime = ''] = item.split(':');
      return { pid: Number(pid), mode, mtime: mtime === '' ? NaN : Number(mtime) };
    });
  const uptime = Number(values.get(`${prefix}.uptime`));
  return {
    pid: Number(pid),
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    sid: Number(fields[3]),
    startTime: fields[19] ?? '',
    exe: values.get(`${prefix}.exe`) ?? '',
    cwd: values.get(`${prefix}.cwd`) ?? '',
    argv: (values.get(`${prefix}.argv`) ?? '').split('\u001f').filter(Boolean),
    children: children.map((child) => child.pid),
    booted: children.filter((child) => child.mode !== '' && hasHeartbeat(child, uptime)).map((child) => child.pid),
  };
}

/** Describes each of `pids` (those still alive) under the prefix `p<pid>`. */
export function describePidsCommand(pids: number[]): ShellFragment {
  return sh`${DESCRIBE}; for p in ${pids.map(String)}; do d "$p" "p$p"; done; true`;
}

/** The processes described by describePidsCommand that are still alive. */
export function parseDescribedPids(stdout: string, pids: number[]): ProcessFacts[] {
  const values = valuesOf(stdout);
  return pids.map((pid) => processFrom(values, `p${pid}`)).filter((facts): facts is ProcessFacts => facts !== undefined);
}

/** Parses the output of childrenCommand: the master's facts, or undefined when it is gone. */
export function parseChildren(stdout: string): ProcessFacts | undefined {
  return parsePidfileFacts(stdout).master;
}
