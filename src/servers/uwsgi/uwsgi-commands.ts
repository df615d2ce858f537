import { sh, type ShellFragment } from '../../remote/shell-quote.js';

/** Exit codes of fifoCommand when it refuses to write. */
export const FIFO_REFUSED = { notTheProcess: 3, notAFifo: 4, notHeldByMaster: 5 } as const;

// O_NONBLOCK: opening a FIFO nobody reads fails at once (ENXIO) instead of hanging the session.
const WRITE_FIFO = [
  'import os, sys',
  'fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)',
  'os.write(fd, sys.argv[2].encode())',
  'os.close(fd)',
].join('\n');

/**
 * Writes a master FIFO command only if `pid` is still the master that started at `startTime`
 * and that master holds `fifo` open: all checked in the same remote shell as the write, so a
 * reused pid or a FIFO of another instance is never written to.
 */
export function fifoCommand(master: { pid: number; startTime: string; python: string }, fifo: string, command: string): ShellFragment {
  const { pid, startTime, python } = master;
  return sh`s=$(sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -d' ' -f20); if [ "$s" != ${startTime} ]; then echo ${`pid ${pid} is no longer the verified uWSGI master`} >&2; exit ${FIFO_REFUSED.notTheProcess}; fi; if [ ! -p ${fifo} ]; then echo ${`${fifo} is not a FIFO`} >&2; exit ${FIFO_REFUSED.notAFifo}; fi; f=$(readlink -f ${fifo}); held=; for d in /proc/${pid}/fd/*; do [ "$(readlink "$d" 2>/dev/null)" = "$f" ] && held=1; done; if [ -z "$held" ]; then echo ${`uWSGI master ${pid} does not hold ${fifo} open`} >&2; exit ${FIFO_REFUSED.notHeldByMaster}; fi; ${python} -c ${WRITE_FIFO} ${fifo} ${command}`;
}

/** Prints whether the master holds `fifo` open (`held`) or not (`not-held`); `missing` when it is no FIFO. */
export function fifoHeldCommand(pid: number, fifo: string): ShellFragment {
  return sh`if [ ! -p ${fifo} ]; then echo missing; exit 0; fi; f=$(readlink -f ${fifo}); for d in /proc/${pid}/fd/*; do if [ "$(readlink "$d" 2>/dev/null)" = "$f" ]; then echo held; exit 0; fi; done; echo not-held`;
}

/** Prints the ini file the master was started with, resolved against its working directory. */
export function readConfigCommand(cwd: string, configFile: string): ShellFragment {
  return sh`cd ${cwd} && cat -- ${configFile}`;
}

const IMPORT_APP = [
  'import os, runpy, sys',
  'release, kind, target = sys.argv[1:4]',
  'os.chdir(release)',
  'for p in reversed(sys.argv[4:]):',
  '    sys.path.insert(0, p)',
  'if kind == "file":',
  '    app = runpy.run_path(target).get("application")',
  'else:',
  '    module, _, name = target.partition(":")',
  '    __import__(module)',
  '    app = getattr(sys.modules[module], name or "application", None)',
  'if not callable(app):',
  '    sys.exit("%s: no callable WSGI application found" % target)',
  'print("import ok")',
].join('\n');

/** What the import check needs, with every path through `current` already pointed at the new release. */
export interface ImportCheck {
  python: string;
  releaseDir: string;
  app: { kind: 'module' | 'file'; target: string };
  pythonpath: string[];
}

/** Imports the app as uWSGI would (its pythonpath, its module or wsgi-file) with the instance's Python. */
export function preflightCommand(check: ImportCheck): ShellFragment {
  return sh`cd ${check.releaseDir} && ${check.python} -c ${IMPORT_APP} ${check.releaseDir} ${check.app.kind} ${check.app.target} ${check.pythonpath}`;
}
