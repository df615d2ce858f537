/**
 * A throwaway PostgreSQL 15 (Debian's binaries) for end-to-end tests: a fresh cluster in a
 * temp dir, owned and run by the postgres user, listening on one address (the sandbox's
 * rootIp, so the hosts reach it over their network) and on a unix socket in that dir, with
 * trust authentication for the hosts' subnet only. Statements that change the schema are
 * logged with time, client address and application name (`log_statement = ddl`), so a test
 * can tell how many times, from where and when a migration ran.
 *
 * stop() kills and removes it; so do an exit hook and a detached watchdog that notices when
 * the test process is gone (even by SIGKILL).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, appendFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { run, runChecked } from '../../support/proc.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface Postgres {
  /** Data dir, socket and log live here. */
  dir: string;
  host: string;
  port: number;
  /** URL of the `app` database as the role `app` (owner of the database), e.g. for database.url. */
  url: string;
  /** The server log (with the logged DDL). */
  logFile: string;
  /** Runs SQL in the `app` database as the superuser; rows as `a|b` lines, trimmed. */
  psql(sql: string): Promise<string>;
  /** Stops the server and removes its dir; safe to call twice, never throws. */
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** Address to listen on (besides the unix socket). */
  listen: string;
  /** CIDR allowed to connect over TCP without a password, e.g. the sandbox's subnet. */
  trust: string;
}

/** Every log line: millisecond time, pid, client address, application name. */
export const LOG_LINE_PREFIX = '%m [%p] %h %a: ';

const live = new Set<string>();
let hooked = false;

function stopSync(dir: string): void {
  spawnSync('runuser', ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore', timeout: 30_000 });
  spawnSync('rm', ['-rf', dir], { stdio: 'ignore', timeout: 30_000 });
  live.delete(dir);
}

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => [...live].forEach(stopSync));
}

/** Throws a clear error when this machine cannot run the server (root, postgresql-15, psql). */
function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('startPostgres must run as root (it runs the server as the postgres user).');
  const missing = [`${PG_BIN}/initdb`, `${PG_BIN}/pg_ctl`, `${PG_BIN}/psql`].filter((file) => !existsSync(file));
  if (missing.length > 0 || spawnSync('id', ['-u', 'postgres']).status !== 0) {
    throw new Error(`startPostgres needs PostgreSQL 15 (missing: ${missing.join(', ') || 'the postgres user'}). Install it with: sudo test/sandbox/install-packages.sh`);
  }
}

export async function startPostgres(opts: PostgresOptions): Promise<Postgres> {
  checkPrerequisites();
  installExitHook();
  const dir = await mkdtemp('/tmp/gd-pg-');
  live.add(dir);
  const data = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  let port = 0;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      try {
        if (existsSync(join(data, 'postmaster.pid'))) {
          await run('runuser', ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], { timeoutMs: 30_000 });
        }
      } catch (error) {
        console.warn(`postgres in ${dir}: stop failed: ${String(error)}`);
      }
      await rm(dir, { recursive: true, force: true }).catch((error: unknown) => console.warn(`postgres: could not remove ${dir}: ${String(error)}`));
      live.delete(dir);
    })());

  try {
    const uid = Number((await runChecked('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await runChecked('id', ['-g', 'postgres'])).stdout.trim());
    await chown(dir, uid, gid);
    await chmod(dir, 0o700);
    startWatchdog(dir);
    await runChecked('runuser', ['-u', 'postgres', '--', `${PG_BIN}/initdb`, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync', '-D', data], {
      timeoutMs: 120_000,
      what: 'initdb',
    });
    await appendFile(join(data, 'pg_hba.conf'), `\n# graceful-deploy e2e: the sandbox hosts\nhost all all ${opts.trust} trust\n`);
    await appendFile(
      join(data, 'postgresql.conf'),
      [
        '',
        '# graceful-deploy e2e',
        `listen_addresses = '${opts.listen}'`,
        `unix_socket_directories = '${dir}'`,
        "log_statement = 'ddl'",
        `log_line_prefix = '${LOG_LINE_PREFIX}'`,
        "log_timezone = 'UTC'",
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        '',
      ].join('\n'),
    );
    // A free port can be taken between choosing and binding it: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort(opts.listen);
      const started = await run(
        'runuser',
        ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', data, '-l', logFile, '-o', `-p ${port}`, '-w', '-t', '30', 'start'],
        { timeoutMs: 60_000, what: 'pg_ctl start' },
      );
      if (started.code === 0) break;
      const log = await readFile(logFile, 'utf8').catch(() => '');
      if (attempt >= 3 || !/could not bind|Address already in use/i.test(log)) {
        throw new Error(`PostgreSQL did not start (pg_ctl exit ${started.code}):\n${started.stderr}${started.stdout}\n${log.slice(-3000)}`);
      }
    }
    const superuser = (sql: string, database = 'postgres') =>
      runChecked(`${PG_BIN}/psql`, ['-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', String(port), '-U', 'postgres', '-d', database, '-c', sql], {
        what: `psql: ${sql.slice(0, 80)}`,
      });
    await superuser('CREATE ROLE app LOGIN');
    await superuser('CREATE DATABASE app OWNER app');
    return {
      dir,
      host: opts.listen,
      port,
      url: `postgresql://app@${opts.listen}:${port}/app`,
      logFile,
      psql: async (sql) => (await superuser(sql, 'app')).stdout.trim(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Stops the server and removes its dir once this process is gone, whatever ended it. */
function startWatchdog(dir: string): void {
  const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
  const start = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19] ?? '';
  const script = `
owner=$1 start=$2 dir=$3 bin=$4
alive() {
  local s; s=$(cat "/proc/$owner/stat" 2>/dev/null) || return 1
  s=\${s##*) }; [ "\${s%% *}" != Z ] && [ "$(cut -d' ' -f20 <<<"$s")" = "$start" ]
}
while [ -d "$dir" ] && alive; do sleep 1; done
[ -d "$dir" ] || exit 0
[ -f "$dir/data/postmaster.pid" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop
rm -rf "$dir"`;
  const child = spawn('/bin/bash', ['-c', script, 'gd-pg-watchdog', String(process.pid), start, dir, PG_BIN], { detached: true, stdio: 'ignore' });
  child.unref();
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
