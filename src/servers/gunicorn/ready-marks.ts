import { ReloadError } from '../../errors.js';
import type { RemoteHost } from '../../remote/remote-host.js';
import { sh, type ShellFragment } from '../../remote/shell-quote.js';

/** A worker's mark left by hooks/graceful_deploy_hook.py: what its in-process readiness request got. */
export interface ReadyMark {
  pid: number;
  status: number;
  version?: string;
  text: string;
}

/** The ready dir the hook uses by default: `ready/` beside the pidfile. */
export function readyDirOf(pidfile: string): string {
  return `${pidfile.replace(/\/[^/]*$/, '')}/ready`;
}

/** Prints `pid mark` for each of `pids` that has a mark. */
export function readMarksCommand(dir: string, pids: number[]): ShellFragment {
  return sh`for p in ${pids.map(String)}; do [ -f ${dir}/"$p" ] && printf '%s %s\n' "$p" "$(head -c 200 ${dir}/"$p")"; done; true`;
}

/** Removes marks of workers that no longer exist (pids get reused; a stale mark must not pass for a new worker). */
export function pruneMarksCommand(dir: string, keep: number[]): ShellFragment {
  return sh`k=${keep.join(' ')}; [ -d ${dir} ] && cd ${dir} && for f in *; do case " $k " in *" $f "*) ;; *) [ -f "$f" ] && rm -f -- "$f";; esac; done; true`;
}

/** Parses readMarksCommand's lines: `pid code<TAB>version<TAB>status line`. */
export function parseMarks(stdout: string): ReadyMark[] {
  const marks: ReadyMark[] = [];
  for (const line of stdout.split('\n')) {
    const match = /^(\d+) (\d+)\t([^\t]*)\t(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, pid = '', status = '', version = '', text = ''] = match;
    marks.push({ pid: Number(pid), status: Number(status), version: version || undefined, text });
  }
  return marks;
}

/**
 * The hook is taken as installed when every running worker left a mark when it booted; then
 * new workers must leave one too. Returns a check for `waitForGeneration`, or undefined.
 */
export async function readyHookCheck(host: RemoteHost, dir: string, running: number[]): Promise<((workers: number[]) => Promise<number[]>) | undefined> {
  const marks = parseMarks((await host.exec('look for ready marks', readMarksCommand(dir, running))).stdout);
  if (running.length === 0 || !running.every((pid) => marks.some((mark) => mark.pid === pid))) return undefined;
  return async (workers) => {
    const found = parseMarks((await host.exec('read the ready marks', readMarksCommand(dir, workers))).stdout);
    const failed = found.find((mark) => mark.status < 200 || mark.status >= 300);
    if (failed) throw new ReloadError(`new worker ${failed.pid} is not ready: its readiness request answered '${failed.text}'`, host.name);
    return found.map((mark) => mark.pid);
  };
}
