import { sh, type ShellFragment } from '../../remote/shell-quote.js';
import type { ProcessRef } from './generation.js';

/**
 * Lists the children of the master `old` (still the process started at its start time) that
 * gunicorn re-executed for USR2, as `pid starttime` lines. Gunicorn's reexec() puts
 * `GUNICORN_PID=<old master>` into the new master's environment, so /proc/<pid>/environ names
 * it from the moment of the exec: long before it writes `<pidfile>.2`, which with preload_app
 * waits until the app is loaded. Workers are forks without an exec: their environment never
 * names their own master.
 */
export function reexecChildCommand(old: ProcessRef): ShellFragment {
  const marker = `GUNICORN_PID=${old.pid}`;
  return sh`[ "$(sed 's/.*) //' /proc/${old.pid}/stat 2>/dev/null | cut -d' ' -f20)" = ${old.startTime} ] || exit 0; for c in $(ps -o pid= --ppid ${old.pid}); do tr '\\000' '\\n' < /proc/"$c"/environ 2>/dev/null | grep -qx ${marker} && printf '%s %s\\n' "$c" "$(sed 's/.*) //' /proc/"$c"/stat | cut -d' ' -f20)"; done; true`;
}

/** The re-executed children listed by reexecChildCommand. */
export function parseReexecChildren(stdout: string): ProcessRef[] {
  return stdout
    .split('\n')
    .map((line) => /^(\d+) (\d+)$/.exec(line.trim()))
    .filter((match): match is RegExpExecArray => match !== null)
    .map(([, pid = '', startTime = '']) => ({ pid: Number(pid), startTime }));
}
