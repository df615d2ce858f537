import { sh, type ShellFragment } from '../../remote/shell-quote.js';
import type { GunicornMaster } from './master-check.js';

/** Exit code of signalCommand when the pid no longer is the verified process. */
export const NOT_THE_VERIFIED_PROCESS_EXIT = 3;

/**
 * Sends a signal only if `pid` is still the process that started at `startTime`: the check
 * and the kill run in one remote shell, so a pid reused since verification is never hit.
 */
export function signalCommand(pid: number, startTime: string, signal: string): ShellFragment {
  return sh`s=$(sed 's/.*) //' /proc/${pid}/stat 2>/dev/null | cut -d' ' -f20); if [ "$s" != ${startTime} ]; then echo ${`pid ${pid} is no longer the verified gunicorn process`} >&2; exit ${NOT_THE_VERIFIED_PROCESS_EXIT}; fi; kill -s ${signal} ${pid}`;
}

const IMPORT_APP = [
  'import os, sys',
  'd = sys.argv[1]',
  'os.chdir(d)',
  'sys.path.insert(0, d)',
  'from gunicorn.util import import_app',
  'import_app(sys.argv[2])',
  'print("import ok")',
].join('\n');

/**
 * Checks that `releaseDir` can be loaded by the master's interpreter before anything is
 * switched: gunicorn's own --check-config with the master's argv (config file and all) when
 * the argv is visible, else an import of the app spec.
 */
export function preflightCommand(master: GunicornMaster, releaseDir: string, appSpec?: string): ShellFragment {
  const python = master.python;
  const spec = appSpec ?? master.titledApp;
  if (spec) return asMasterUser(master, sh`cd ${releaseDir} && ${python} -c ${IMPORT_APP} ${releaseDir} ${spec}`);
  return asMasterUser(master, sh`cd ${releaseDir} && PWD=${releaseDir} ${python} ${master.argv.slice(1)} --chdir ${releaseDir} --check-config`);
}

/**
 * Runs a check as the user the master runs as, when the SSH user is root and the master is not:
 * a release root can read but the app's user cannot (a 0700 directory, a root-only file) would
 * pass a check run as root, then make every new worker fail to boot, and gunicorn halts.
 * (With `become`, commands already run as that user.)
 */
export function asMasterUser(master: Pick<GunicornMaster, 'pid'>, command: ShellFragment): ShellFragment {
  return sh`if [ "$(id -u)" = 0 ] && o=$(stat -c %U /proc/${master.pid}) && [ "$o" != root ]; then exec runuser -u "$o" -- /bin/sh -c ${command.text}; fi; ${command}`;
}

// argv: how many release dirs, the dirs, the check (`none`, `config` or `import`, its dir, the
// app spec to import), then gunicorn's arguments. gunicorn is imported once; the check and each
// dir's read run in forked children (each its own cwd, config file and imports, nothing shared):
// the check starts first and the reads run while it loads the app. A config read prints one JSON
// line tagged with the dir's index; the check is gunicorn's own --check-config (or an import of
// the app spec), then the parent prints {"check": <passed>}.
const READ_CONFIGS = [
  'import json, os, sys, traceback',
  'n = int(sys.argv[1])',
  'dirs = sys.argv[2:2 + n]',
  'kind, check_dir, spec = sys.argv[2 + n:5 + n]',
  'args = sys.argv[5 + n:]',
  'import gunicorn.config',
  'from gunicorn.app.wsgiapp import WSGIApplication',
  'def spawn(d, body):',
  '    sys.stdout.flush()',
  '    sys.stderr.flush()',
  '    pid = os.fork()',
  '    if pid == 0:',
  '        code = 1',
  '        try:',
  '            os.chdir(d)',
  '            os.environ["PWD"] = d',
  // chdir's default is the cwd gunicorn.config was imported in (the first dir): this one's, as a lone run would have it.
  '            for setting in gunicorn.config.KNOWN_SETTINGS:',
  '                if setting.name == "chdir":',
  '                    setting.default = d',
  '            body(d)',
  '            code = 0',
  '        except SystemExit as e:',
  '            code = e.code if isinstance(e.code, int) else int(e.code is not None)',
  '        except BaseException:',
  '            traceback.print_exc()',
  '        finally:',
  '            sys.stdout.flush()',
  '            sys.stderr.flush()',
  '            os._exit(code)',
  '    return pid',
  'def passed(pid):',
  '    return os.waitpid(pid, 0)[1] == 0',
  'def reader(i):',
  '    def read(d):',
  '        sys.argv = ["gunicorn"] + args',
  '        c = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg',
  '        print(json.dumps({"dir": i, "daemon": bool(c.daemon), "preload_app": bool(c.preload_app), "workers": c.workers, "pidfile": c.pidfile, "graceful_timeout": c.graceful_timeout, "max_requests": c.max_requests}))',
  '    return read',
  'def check_config(d):',
  '    sys.argv = ["gunicorn"] + args + ["--chdir", d, "--check-config"]',
  '    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()',
  'def import_spec(d):',
  '    sys.path.insert(0, d)',
  '    from gunicorn.util import import_app',
  '    import_app(spec)',
  '    print("import ok")',
  'checking = kind != "none" and spawn(check_dir, check_config if kind == "config" else import_spec)',
  'for i, d in enumerate(dirs):',
  '    passed(spawn(d, reader(i)))',
  'if checking:',
  '    print(json.dumps({"check": passed(checking)}), flush=True)',
].join('\n');

/** Gunicorn settings that decide which strategies can work. */
export interface GunicornConfig {
  /** `argv`: read with the master's own arguments; `default-file`: only ./gunicorn.conf.py (arguments hidden). */
  source: 'argv' | 'default-file';
  daemon: boolean;
  preload_app: boolean;
  workers: number;
  pidfile: string | null;
  /** Seconds workers get to finish their requests when stopped (TERM). */
  graceful_timeout: number;
  /** Requests after which a worker is recycled (0 = never): workers come and go during a reload. */
  max_requests: number;
}

/** gunicorn's arguments in the master's argv: what follows the gunicorn script (or `-m gunicorn`). */
export function gunicornArgs(argv: string[]): string[] | undefined {
  const at = argv.findIndex((arg, index) => index > 0 && /(^|\/)gunicorn$/.test(arg));
  return at < 0 ? undefined : argv.slice(at + 1);
}

/**
 * Reads the config gunicorn would use for each of `releaseDirs` with the master's arguments,
 * with gunicorn's own parser (config file, command line, GUNICORN_CMD_ARGS), in one Python
 * start. When setproctitle hides the arguments, it reads what gunicorn reads without any: the
 * release's ./gunicorn.conf.py (gunicorn's default config file), with the app named in the title.
 * With `check`, the same Python start then checks that release as preflightCommand does
 * (parseCheck reads the verdict): the import check pays no second start of Python and gunicorn.
 */
export function readConfigsCommand(master: GunicornMaster, releaseDirs: string[], check?: { releaseDir: string; appSpec?: string }): ShellFragment | undefined {
  const args = master.titledApp !== undefined ? [master.titledApp] : gunicornArgs(master.argv);
  const first = releaseDirs[0];
  if (!args || first === undefined) return undefined;
  const spec = check?.appSpec ?? master.titledApp;
  const checking = check ? [spec ? 'import' : 'config', check.releaseDir, spec ?? '-'] : ['none', '-', '-'];
  return asMasterUser(master, sh`cd ${first} && ${master.python} -c ${READ_CONFIGS} ${String(releaseDirs.length)} ${releaseDirs} ${checking} ${args}`);
}

/** Whether readConfigsCommand's check passed: undefined when it printed no verdict (it died first). */
export function parseCheck(stdout: string): boolean | undefined {
  const verdict = /^\{"check": (true|false)\}$/m.exec(stdout)?.[1];
  return verdict === undefined ? undefined : verdict === 'true';
}

/** readConfigsCommand's answers, by the dirs' order: undefined for a dir whose read failed. */
export function parseConfigs(stdout: string, count: number): (Omit<GunicornConfig, 'source'> | undefined)[] {
  const found = new Map<number, Omit<GunicornConfig, 'source'>>();
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{"dir"')) continue;
    try {
      const { dir, ...config } = JSON.parse(line) as { dir: number } & Omit<GunicornConfig, 'source'>;
      found.set(dir, config);
    } catch {
      // A line the app's config printed that only looks like ours.
    }
  }
  return Array.from({ length: count }, (_, index) => found.get(index));
}
