import { raw, sh, type ShellFragment } from '../../remote/shell-quote.js';
import { hasHeartbeat } from './gunicorn-versions.js';

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
}

/** The shell function that prints a process's facts as `<prefix>.<key>=<value>` lines. */
const DESCRIBE = raw(
  `d() { p=$1; [ -n "$p" ] && [ -r "/proc/$p/stat" ] || return 0; ` +
    `printf '%s.stat=%s\\n' "$2" "$(sed 's/.*) //' /proc/$p/stat)"; ` +
    `printf '%s.exe=%s\\n' "$2" "$(readlink /proc/$p/exe)"; ` +
    `printf '%s.cwd=%s\\n' "$2" "$(readlink /proc/$p/cwd)"; ` +
    `printf '%s.argv=%s\\n' "$2" "$(tr '\\000\\n' '\\037 ' < /proc/$p/cmdline)"; ` +
    `printf '%s.uptime=%s\\n' "$2" "$(cut -d' ' -f1 /proc/uptime)"; ` +
    // Each child as pid:mode:mtime of its heartbeat file (empty for a child without one).
    `printf '%s.children=' "$2"; for c in $(ps -o pid= --ppid "$p"); do m=:; for f in /proc/$c/fd/*; do case "$(readlink "$f" 2>/dev/null)" in *wgunicorn-*) m=$(stat -L -c %a:%Y "$f" 2>/dev/null);; esac; done; printf '%s:%s ' "$c" "$m"; done; echo; ` +
    `printf '%s.pid=%s\\n' "$2" "$p"; }`,
);

/** Reads a pidfile's pid and describes it, its parent and any `.2` upgrade master. */
export function inspectPidfileCommand(pidfile: string, appDir: string): ShellFragment {
  return sh`${DESCRIBE}; pid=$(tr -dc 0-9 < ${pidfile} 2>/dev/null); printf 'pidfile=%s\n' "$pid"; d "$pid" master; [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] && d "$(sed 's/.*) //' /proc/$pid/stat | cut -d' ' -f2)" parent; up=$(tr -dc 0-9 < ${`${pidfile}.2`} 2>/dev/null); printf 'pidfile2=%s\n' "$up"; d "$up" upgrade; printf 'appdir=%s\n' "$(readlink -f ${appDir})"`;
}

/** Lists the children of a pid, only while that pid is still the process started at `startTime`. */
export function childrenCommand(pid: number, startTime: string): ShellFragment {
  return sh`${DESCRIBE}; [ "$(sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -d' ' -f20)" = ${startTime} ] && d ${pid} master; true`;
}

function valuesOf(stdout: string): Map<string, string> {
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
