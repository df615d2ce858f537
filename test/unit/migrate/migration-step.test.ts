/**
 * The migration step against a scripted host that answers with real Alembic output (the
 * snapshots of the fixture projects).
 */
import { describe, expect, it } from 'vitest';

import {
  MigrationCommandError,
  MigrationError,
  MigrationLintError,
  MultipleHeadsError,
} from '../../../src/migrate/migration-errors.js';
import { runMigrationStep, type MigrationStepOptions } from '../../../src/migrate/migration-step.js';
import { revisionFiles, snapshot } from './fixtures.js';
import { ScriptedHost } from './scripted-host.js';

const LOCK_TIMEOUT_OUTPUT = [
  'INFO  [alembic.runtime.migration] Running upgrade p01 -> p02, add columns',
  'sqlalchemy.exc.OperationalError: (psycopg2.errors.LockNotAvailable) canceling statement due to lock timeout',
  '[SQL: ALTER TABLE users ADD COLUMN nickname VARCHAR(50)]',
].join('\n');

function options(overrides: Partial<MigrationStepOptions> = {}): MigrationStepOptions & { lines: string[]; sleeps: number[] } {
  const lines: string[] = [];
  const sleeps: number[] = [];
  return {
    releaseDir: '/srv/app/releases/v2',
    migrateCommand: 'alembic upgrade head',
    lint: true,
    allowUnsafe: false,
    lockTimeoutSeconds: 5,
    python: '/srv/app/venv/bin/python',
    log: (line) => lines.push(line),
    sleep: async (milliseconds) => {
      sleeps.push(milliseconds);
    },
    lines,
    sleeps,
    ...overrides,
  };
}

function filesJson(project: string, revisions: string[]): string {
  const files = revisionFiles(project);
  return JSON.stringify(Object.fromEntries(revisions.map((revision) => [revision, files[revision]])));
}

/** The PostgreSQL fixture at p01 with p02..p15 pending. */
function postgresHost(): ScriptedHost {
  const pending = Array.from({ length: 14 }, (_, index) => `p${String(index + 2).padStart(2, '0')}`);
  return new ScriptedHost()
    .on('alembic heads', { stdout: snapshot('postgresql-heads.txt') })
    .on('alembic current', { stdout: 'p01\n', stderr: 'INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n' })
    .on('render pending migrations as SQL', {
      stdout: snapshot('postgresql-p01-head.sql'),
      stderr: snapshot('postgresql-p01-head.stderr.txt'),
    })
    .on('locate revision files', { stdout: filesJson('postgresql', pending) });
}

/** The MySQL fixture at m02 with only m03 pending, which the lint finds clean. */
function cleanHost(): ScriptedHost {
  return new ScriptedHost()
    .on('alembic heads', { stdout: 'm03 (head)\n' })
    .on('alembic current', { stdout: 'm02\n', stderr: 'INFO  [alembic.runtime.migration] Context impl MySQLImpl.\n' })
    .on('render pending migrations as SQL', {
      stdout: snapshot('mysql-m02-head.sql'),
      stderr: snapshot('mysql-m01-head.stderr.txt'),
    })
    .on('locate revision files', { stdout: filesJson('mysql', ['m03']) });
}

describe('runMigrationStep', () => {
  it('lints, migrates once with the lock timeout, and records the revision before and after', async () => {
    const host = cleanHost()
      .on('run migrate-command', { stdout: 'INFO  [alembic.runtime.migration] Running upgrade m02 -> m03\n' })
      .on('alembic current', { stdout: 'm03 (head)\n' });
    const opts = options();
    const result = await runMigrationStep(host, opts);

    expect(result).toEqual({ skipped: false, revisionBefore: 'm02', revisionAfter: 'm03', findings: [], dialect: 'mysql' });
    expect(host.purposes()).toEqual([
      'alembic heads',
      'alembic current',
      'render pending migrations as SQL',
      'locate revision files',
      'run migrate-command',
      'alembic current',
    ]);
    expect(host.calls[2]?.command).toMatch(/^cd \/srv\/app\/releases\/v2 && \/srv\/app\/venv\/bin\/python -c 'import sys\n[^]*' upgrade m02:m03 --sql$/);
    expect(host.calls[3]?.command).toMatch(/ '' alembic m03$/);
    expect(host.calls[4]?.command).toBe(
      `cd /srv/app/releases/v2 && PGOPTIONS="\${PGOPTIONS:+$PGOPTIONS }"'-c lock_timeout=5000ms' sh -c 'alembic upgrade head' 2>&1`,
    );
    expect(opts.lines).toContain('database at m02; head is m03');
    expect(opts.lines).toContain('lint (mysql): 1 pending revision, 0 errors, 0 warnings, 0 allowed, 0 info');
    expect(opts.lines).toContain('  INFO  [alembic.runtime.migration] Running upgrade m02 -> m03');
    expect(opts.lines).toContain('database now at m03');
  });

  it('repeats the config options of the migrate command on every alembic command', async () => {
    const host = cleanHost()
      .on('run migrate-command', {})
      .on('alembic current', { stdout: 'm03 (head)\n' });
    await runMigrationStep(host, options({ migrateCommand: '.venv/bin/alembic -c db/alembic.ini -n mysql upgrade head' }));
    expect(host.calls[0]?.command).toBe(
      'cd /srv/app/releases/v2 && /srv/app/venv/bin/python -m alembic -c db/alembic.ini -n mysql heads',
    );
    expect(host.calls[3]?.command).toMatch(/ db\/alembic\.ini mysql m03$/);
  });

  it('stops before migrating when the lint finds errors, carrying every finding', async () => {
    const host = postgresHost();
    const error = await runMigrationStep(host, options()).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(MigrationLintError);
    const lintError = error as MigrationLintError;
    expect(lintError.host).toBe('deploy@app1:22');
    expect(lintError.message).toMatch(/^\[deploy@app1:22\] The migration lint found \d+ unsafe operations: not-null-without-default in p02 \(migrations\/versions\/p02_add_columns\.py\)/);
    expect(lintError.blocking.every((finding) => finding.severity === 'error' && !finding.allowed)).toBe(true);
    expect(lintError.findings.some((finding) => finding.allowed)).toBe(true);
    expect(lintError.findings.some((finding) => finding.severity === 'info')).toBe(true);
    expect(host.purposes()).not.toContain('run migrate-command');
    expect(lintError.progress).toMatchObject({ revisionBefore: expect.any(String), revisionAfter: null, dialect: 'postgresql' });
    expect(lintError.progress?.findings).toEqual(lintError.findings);
  });

  it('migrates despite lint errors with migration-lint: warn, and says so', async () => {
    const host = postgresHost()
      .on('run migrate-command', {})
      .on('alembic current', { stdout: 'p15 (head)\n' });
    const opts = options({ allowUnsafe: true });
    const result = await runMigrationStep(host, opts);

    expect(result).toMatchObject({ skipped: false, revisionBefore: 'p01', revisionAfter: 'p15', dialect: 'postgresql' });
    expect(result.findings.filter((finding) => finding.rule === 'drop-table')).toHaveLength(1);
    expect(opts.lines.some((line) => /^migration-lint: warn: migrating despite \d+ lint errors$/.test(line))).toBe(true);
    expect(opts.lines).toContain(
      '  error drop-table in p08 (migrations/versions/p08_drops.py): DROP TABLE events: the old release still queries it until every host has reloaded. ' +
        'Once the running release no longer uses events, add this line to the revision: `# graceful-deploy: allow=drop-table events unused since <release>`.',
    );
  });

  it('skips everything when the database is already at the head', async () => {
    const host = new ScriptedHost()
      .on('alembic heads', { stdout: snapshot('sqlite-current-head.txt') })
      .on('alembic current', { stdout: snapshot('sqlite-current-head.txt') });
    const opts = options();
    expect(await runMigrationStep(host, opts)).toEqual({
      skipped: true,
      revisionBefore: 's07',
      revisionAfter: 's07',
      findings: [],
      dialect: null,
    });
    expect(host.purposes()).toEqual(['alembic heads', 'alembic current']);
    expect(opts.lines).toEqual(['database already at head s07: skipping migrations']);
  });

  it('refuses several heads before touching anything', async () => {
    const host = new ScriptedHost().on('alembic heads', { stdout: snapshot('multihead-heads.txt') });
    const error = await runMigrationStep(host, options()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MultipleHeadsError);
    expect((error as MultipleHeadsError).heads).toEqual(['ca12c7581790', '7c8ababd80b7']);
    expect((error as Error).message).toContain("'alembic merge heads'");
    expect(host.purposes()).toEqual(['alembic heads']);
  });

  it('retries a lock timeout with backoff, then succeeds', async () => {
    const host = cleanHost()
      .on('run migrate-command', { code: 1, stdout: LOCK_TIMEOUT_OUTPUT }, { code: 1, stdout: LOCK_TIMEOUT_OUTPUT }, {})
      .on('alembic current', { stdout: 'm03 (head)\n' });
    const opts = options();
    const result = await runMigrationStep(host, opts);
    expect(result.revisionAfter).toBe('m03');
    expect(opts.sleeps).toEqual([5000, 10000]);
    expect(opts.lines).toContain('lock timeout: retrying in 5s (1 of 3 retries)');
    // MySQL: PGOPTIONS is still passed but means nothing there, so the log does not claim a lock_timeout.
    expect(opts.lines).toContain('running migrate-command, attempt 3');
  });

  it('gives up after the retries, with the output tail and where the database stopped', async () => {
    const failure = { code: 1, stdout: LOCK_TIMEOUT_OUTPUT };
    const host = cleanHost()
      .on('run migrate-command', failure, failure, failure)
      .on('alembic current', { stdout: 'm02\n' });
    const opts = options({ lockRetries: 2, retryDelaySeconds: 1 });
    const error = await runMigrationStep(host, opts).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(MigrationCommandError);
    expect(error).toMatchObject({ lockTimeout: true, attempts: 3, code: 1, revisionAfter: 'm02' });
    expect((error as Error).message).toContain('timed out waiting for a lock 3 times');
    expect((error as Error).message).toContain('The database is at revision m02.');
    expect((error as MigrationCommandError).outputTail).toContain('canceling statement due to lock timeout');
    expect(opts.sleeps).toEqual([1000, 2000]);
    expect((error as MigrationCommandError).progress).toMatchObject({ revisionAfter: 'm02' });
  });

  it('does not retry other failures', async () => {
    const host = cleanHost()
      .on('run migrate-command', { code: 1, stdout: 'line\n'.repeat(40) + 'KeyError: boom\n' })
      .on('alembic current', { stdout: 'm02\n' });
    const error = (await runMigrationStep(host, options()).catch((caught: unknown) => caught)) as MigrationCommandError;
    expect(error).toBeInstanceOf(MigrationCommandError);
    expect(error.lockTimeout).toBe(false);
    expect(error.outputTail.split('\n')).toHaveLength(25);
    expect(error.outputTail).toMatch(/KeyError: boom$/);
    expect(host.purposes().filter((purpose) => purpose === 'run migrate-command')).toHaveLength(1);
  });

  it('explains why SQLite batch migrations cannot be rendered offline', async () => {
    const host = new ScriptedHost()
      .on('alembic heads', { stdout: 's07 (head)\n' })
      .on('alembic current', { stdout: 's01\n' })
      .on('render pending migrations as SQL', {
        code: 255,
        stderr:
          'FAILED: This operation cannot proceed in --sql mode; batch mode with dialect sqlite requires a live database connection with which to reflect the table "users".',
      });
    const error = await runMigrationStep(host, options()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain('pass copy_from=<Table> to batch_alter_table');
  });

  it('without the lint, still checks heads and records revisions, but renders no SQL', async () => {
    const host = new ScriptedHost()
      .on('alembic heads', { stdout: 'm03 (head)\n' })
      .on('alembic current', { stdout: '' }, { stdout: 'm03 (head)\n' })
      .on('run migrate-command', {});
    const result = await runMigrationStep(host, options({ lint: false, lockTimeoutSeconds: 0 }));
    expect(result).toEqual({ skipped: false, revisionBefore: null, revisionAfter: 'm03', findings: [], dialect: null });
    expect(host.calls.find((call) => call.purpose === 'run migrate-command')?.command).toBe(
      "cd /srv/app/releases/v2 && sh -c 'alembic upgrade head' 2>&1",
    );
  });

  it('runs a command that is not alembic as it is', async () => {
    const host = new ScriptedHost().on('run migrate-command', {});
    const opts = options({ lint: false, migrateCommand: './manage.py migrate --noinput' });
    expect(await runMigrationStep(host, opts)).toEqual({
      skipped: false,
      revisionBefore: null,
      revisionAfter: null,
      findings: [],
      dialect: null,
    });
    expect(host.purposes()).toEqual(['run migrate-command']);
  });

  it('turns a failing alembic command into a MigrationError with its output', async () => {
    const host = new ScriptedHost().on('alembic heads', { code: 1, stderr: "No module named 'alembic'" });
    await expect(runMigrationStep(host, options())).rejects.toThrow(/alembic heads failed \(exit 1\):\nNo module named 'alembic'/);
  });
});
