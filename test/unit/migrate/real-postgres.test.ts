/**
 * The migration step against a real PostgreSQL 15 (Debian's binaries, started here on a
 * socket in a scratch directory): the lock timeout the step sends through PGOPTIONS reaches
 * psycopg2's session, a blocked ALTER TABLE times out instead of queueing forever, and the
 * step retries until the lock is free. Skipped unless running as root with postgresql-15,
 * alembic and psycopg2 installed (the server itself runs as the postgres user).
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sh } from '../../../src/remote/shell-quote.js';
import { runMigrationStep } from '../../../src/migrate/migration-step.js';
import { FIXTURES } from './fixtures.js';
import { LocalHost } from '../support/local-host.js';

const BIN = '/usr/lib/postgresql/15/bin';
const PORT = 54331;

function canRunPostgres(): boolean {
  if (process.getuid?.() !== 0 || !existsSync(`${BIN}/pg_ctl`)) return false;
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import alembic, psycopg2'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!canRunPostgres())('against a real PostgreSQL', () => {
  let work = '';
  let releaseDir = '';
  let host: LocalHost;

  const asPostgres = (command: string): void => {
    execFileSync('su', ['postgres', '-c', command], { stdio: 'ignore' });
  };
  const psql = (sql: string): string =>
    execFileSync(`${BIN}/psql`, ['-X', '-qAt', '-h', work, '-p', String(PORT), '-U', 'postgres', '-d', 'app', '-c', sql], {
      encoding: 'utf8',
    }).trim();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'migrate-pg-'));
    chownSync(work, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), 0);
    asPostgres(`${BIN}/initdb -A trust -U postgres -D ${work}/data`);
    asPostgres(`${BIN}/pg_ctl -D ${work}/data -o "-k ${work} -p ${PORT} -c listen_addresses=" -l ${work}/log -w start`);
    execFileSync(`${BIN}/psql`, ['-X', '-q', '-h', work, '-p', String(PORT), '-U', 'postgres', '-c', 'CREATE DATABASE app']);
    releaseDir = join(work, 'release');
    cpSync(join(FIXTURES, 'postgresql'), releaseDir, { recursive: true });
    // env.py takes the database from DATABASE_URL; migrations run as on a host, via `sh -c`.
    host = new LocalHost('localhost', undefined, { ...process.env, DATABASE_URL: `postgresql://postgres@/app?host=${work}&port=${PORT}` });
    await host.exec('baseline', sh`cd ${releaseDir} && /usr/bin/alembic upgrade p01`);
  }, 60_000);

  afterAll(() => {
    if (!work) return;
    try {
      asPostgres(`${BIN}/pg_ctl -D ${work}/data -m immediate stop`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('times out on a held lock, retries, and migrates once the lock is gone', async () => {
    // Another session holds ACCESS SHARE on users until we send COMMIT.
    const holder: ChildProcessWithoutNullStreams = spawn(`${BIN}/psql`, ['-X', '-q', '-h', work, '-p', String(PORT), '-U', 'postgres', '-d', 'app']);
    holder.stdin.on('error', () => {}); // psql gone early must fail the assertions, not crash the run
    holder.stdin.write('BEGIN; LOCK TABLE users IN ACCESS SHARE MODE; SELECT 1;\n');
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));

    const lines: string[] = [];
    const result = await runMigrationStep(host, {
      releaseDir,
      migrateCommand: '/usr/bin/alembic upgrade p02',
      lint: true,
      allowUnsafe: true,
      lockTimeoutSeconds: 1,
      retryDelaySeconds: 0.2,
      python: '/usr/bin/python3',
      log: (line) => {
        lines.push(line);
        if (line.startsWith('lock timeout: retrying')) holder.stdin.end('COMMIT;\n');
      },
    });

    expect(result).toMatchObject({ skipped: false, revisionBefore: 'p01', revisionAfter: 'p02', dialect: 'postgresql' });
    expect(lines.some((line) => line.includes('canceling statement due to lock timeout'))).toBe(true);
    expect(lines).toContain('lock timeout: retrying in 0.2s (1 of 3 retries)');
    expect(lines).toContain('running migrate-command (lock_timeout 1s), attempt 2');
    expect(psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'")).toBe('1');
    // The lint saw the action's timeout: the lock-timeout rule is satisfied, as info.
    expect(result.findings.find((finding) => finding.rule === 'lock-timeout')?.severity).toBe('info');
  }, 60_000);
});
