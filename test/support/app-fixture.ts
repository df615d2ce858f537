/**
 * The sample app of the end-to-end tests: writeRelease() turns the templates in
 * test/fixtures/app/ into a release source directory with its version and behaviour baked in.
 * A WSGI app (app.py) for gunicorn's own worker classes and uWSGI; its ASGI twin (asgi_app.py,
 * written as app.py) for an ASGI worker class such as uvicorn's.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface AppOptions {
  /** Reported by the app: `X-App-Version` header and `version` in /health/ready. */
  version: string;
  /** Sleep this long at import (each worker, or the master with preload). */
  bootSeconds?: number;
  /** Sleep bootSeconds only inside a running gunicorn (as failOnlyUnderGunicorn): the import check stays fast. */
  bootOnlyUnderGunicorn?: boolean;
  /** Raise at import: workers fail to boot. */
  importError?: boolean;
  /** /health/ready always answers 503. */
  neverReady?: boolean;
  /**
   * /health/ready answers 503 while this absolute path exists. Each sandbox host has its own
   * view of the app dir, so a file under it makes the release fail on that host alone.
   */
  notReadyFile?: string;
  /** `preload_app = True` in gunicorn.conf.py. */
  preload?: boolean;
  /** Gunicorn workers; default 2. */
  workers?: number;
  /**
   * Raise at import only inside a running gunicorn (its Arbiter puts SERVER_SOFTWARE in
   * os.environ; `gunicorn --check-config` exits before it exists): the release passes an import
   * check, then every worker fails to boot.
   */
  failOnlyUnderGunicorn?: boolean;
  /** Raise at import only inside uWSGI (the `uwsgi` module is importable): passes an import check, then no worker has an app. */
  failOnlyUnderUwsgi?: boolean;
  /** `/` answers 500 while /health/ready passes: only real traffic shows the release is broken. */
  failRequests?: boolean;
  /** `lazy-apps` in uwsgi.ini (default true): needed by a chain reload. */
  lazyApps?: boolean;
  /**
   * Install hooks/graceful_deploy_hook.py: the file is copied into the release and
   * gunicorn.conf.py does `from graceful_deploy_hook import post_worker_init`, as docs/gunicorn.md
   * tells users to.
   */
  readyHook?: boolean;
  /**
   * App dir baked into gunicorn.conf.py (pidfile <appDir>/run/gunicorn.pid, logs in
   * <appDir>/shared/log). Default: derived at runtime from the file's own location,
   * <appDir>/releases/<name>/gunicorn.conf.py, so a source dir works wherever it is deployed.
   */
  appDir?: string;
  /** Gunicorn `max_requests` (worker recycling; default 0 = never) and `max_requests_jitter`. */
  maxRequests?: number;
  maxRequestsJitter?: number;
  /** Gunicorn `graceful_timeout` in seconds; default 10. */
  gracefulTimeout?: number;
  /** Gunicorn worker `timeout` in seconds (a request longer than this is killed); default 30. */
  timeoutSeconds?: number;
  /**
   * Gunicorn `worker_class`, default `sync` (`gthread` gets 4 threads). An ASGI worker class
   * (ASGI_WORKER_CLASSES) gets the ASGI twin of the app, served as the same `app:application`.
   */
  workerClass?: WorkerClass;
  /** Gunicorn also binds `unix:<appDir>/run/gunicorn.sock` (beside 0.0.0.0:8000, which HAProxy uses). */
  unixSocket?: boolean;
  /** Every request without `X-Forwarded-Proto: https` answers 301 to https on its Host (Django's SECURE_SSL_REDIRECT); WSGI app only. */
  sslRedirect?: boolean;
}

/** The gunicorn worker classes the end-to-end tests run (Debian's python3-gevent and python3-uvicorn). */
export const WORKER_CLASSES = ['sync', 'gthread', 'gevent', 'uvicorn.workers.UvicornWorker'] as const;
export type WorkerClass = (typeof WORKER_CLASSES)[number];
/** Worker classes that serve an ASGI app. */
export const ASGI_WORKER_CLASSES: readonly WorkerClass[] = ['uvicorn.workers.UvicornWorker'];

const TEMPLATE_DIR = fileURLToPath(new URL('../fixtures/app/', import.meta.url));
/** The ready hook users install (the repository's own copy). */
export const READY_HOOK_FILE = fileURLToPath(new URL('../../hooks/graceful_deploy_hook.py', import.meta.url));
const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/;

/**
 * Writes app.py and gunicorn.conf.py of one release into `dir` (created if missing), and
 * uwsgi.ini when the app dir is known (uWSGI options hold absolute paths).
 */
export async function writeRelease(dir: string, opts: AppOptions): Promise<void> {
  if (!VERSION_PATTERN.test(opts.version)) {
    throw new Error(`writeRelease: version '${opts.version}' must match ${VERSION_PATTERN}`);
  }
  const workers = opts.workers ?? 2;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`writeRelease: workers must be >= 1, got ${workers}`);
  const bootSeconds = opts.bootSeconds ?? 0;
  if (!(bootSeconds >= 0)) throw new Error(`writeRelease: bootSeconds must be >= 0, got ${bootSeconds}`);
  if (opts.appDir !== undefined && !opts.appDir.startsWith('/')) {
    throw new Error(`writeRelease: appDir must be absolute, got '${opts.appDir}'`);
  }

  const workerClass = opts.workerClass ?? 'sync';
  if (!WORKER_CLASSES.includes(workerClass)) throw new Error(`writeRelease: workerClass must be one of ${WORKER_CLASSES.join(', ')}, got '${workerClass}'`);
  const asgi = ASGI_WORKER_CLASSES.includes(workerClass);
  if (asgi && (opts.failOnlyUnderUwsgi || opts.sslRedirect)) throw new Error('writeRelease: failOnlyUnderUwsgi and sslRedirect are options of the WSGI app, not of its ASGI twin');
  const settings: Record<string, string> = {
    VERSION: pyString(opts.version),
    BOOT_SECONDS: String(bootSeconds.toFixed(3)),
    BOOT_ONLY_UNDER_GUNICORN: pyBool(opts.bootOnlyUnderGunicorn),
    IMPORT_ERROR: pyBool(opts.importError),
    NEVER_READY: pyBool(opts.neverReady),
    NOT_READY_FILE: pyString(opts.notReadyFile ?? ''),
    FAIL_ONLY_UNDER_GUNICORN: pyBool(opts.failOnlyUnderGunicorn),
    FAIL_REQUESTS: pyBool(opts.failRequests),
  };
  if (!asgi) Object.assign(settings, { FAIL_ONLY_UNDER_UWSGI: pyBool(opts.failOnlyUnderUwsgi), SSL_REDIRECT: pyBool(opts.sslRedirect) });
  const app = setPythonConstants(await readFile(join(TEMPLATE_DIR, asgi ? 'asgi_app.py' : 'app.py'), 'utf8'), settings);
  const conf = setPythonConstants(await readFile(join(TEMPLATE_DIR, 'gunicorn.conf.py'), 'utf8'), {
    WORKERS: String(workers),
    PRELOAD: pyBool(opts.preload),
    APP_DIR: opts.appDir === undefined ? 'None' : pyString(opts.appDir),
    READY_HOOK: pyBool(opts.readyHook),
    MAX_REQUESTS: count('maxRequests', opts.maxRequests ?? 0),
    MAX_REQUESTS_JITTER: count('maxRequestsJitter', opts.maxRequestsJitter ?? 0),
    GRACEFUL_TIMEOUT: count('gracefulTimeout', opts.gracefulTimeout ?? 10),
    TIMEOUT: count('timeoutSeconds', opts.timeoutSeconds ?? 30),
    WORKER_CLASS: pyString(workerClass),
    UNIX_SOCKET: pyBool(opts.unixSocket),
  });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'app.py'), app);
  await writeFile(join(dir, 'gunicorn.conf.py'), conf);
  if (opts.appDir !== undefined) {
    const ini = (await readFile(join(TEMPLATE_DIR, 'uwsgi.ini'), 'utf8'))
      .replaceAll('@APP_DIR@', opts.appDir)
      .replaceAll('@WORKERS@', String(workers))
      .replaceAll('@LAZY_APPS@', opts.lazyApps === false ? 'false' : 'true');
    await writeFile(join(dir, 'uwsgi.ini'), ini);
  }
  if (opts.readyHook) await copyFile(READY_HOOK_FILE, join(dir, 'graceful_deploy_hook.py'));
}

/** Replaces `NAME = ...` lines of a template's settings block; each name must occur exactly once. */
function setPythonConstants(source: string, values: Record<string, string>): string {
  let result = source;
  for (const [name, value] of Object.entries(values)) {
    const line = new RegExp(`^${name} = .*$`, 'gm');
    const matches = result.match(line)?.length ?? 0;
    if (matches !== 1) throw new Error(`fixture template: expected one '${name} = ...' line, found ${matches}`);
    result = result.replace(line, () => `${name} = ${value}`);
  }
  return result;
}

/** A JSON string is a valid Python string literal for the characters we allow. */
function pyString(value: string): string {
  return JSON.stringify(value);
}

/** A non-negative integer setting, as Python source. */
function count(name: string, value: number): string {
  if (!Number.isInteger(value) || value < 0) throw new Error(`writeRelease: ${name} must be an integer >= 0, got ${value}`);
  return String(value);
}

function pyBool(value: boolean | undefined): string {
  return value ? 'True' : 'False';
}
