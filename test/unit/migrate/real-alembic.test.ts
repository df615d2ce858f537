/**
 * The command builders and the migration step against real Alembic (Debian's /usr/bin/python3
 * with alembic 1.8), on copies of the fixture projects. Skipped where that Python is missing.
 */
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { revisionFilesCommand, upgradeSqlCommand, type AlembicTarget } from '../../../src/migrate/alembic-commands.js';
import { MigrationLintError, NothingRenderedError } from '../../../src/migrate/migration-errors.js';
import { runMigrationStep, type MigrationStepOptions } from '../../../src/migrate/migration-step.js';
import { FIXTURES, revisionFiles, snapshot } from './fixtures.js';
import { LocalHost } from '../support/local-host.js';
import { sh } from '../../../src/remote/shell-quote.js';
import { PYTHON, pythonImports, scratchDirectory } from './python-project.js';


/** A copy of a fixture project, to play a release directory with its own database file. */
function scratchCopy(project: string): string {
  const dir = scratchDirectory('migrate');
  cpSync(join(FIXTURES, project), join(dir, project), { recursive: true });
  rmSync(join(dir, project, 'app.db'), { force: true });
  return join(dir, project);
}

/** The step on a scratch release, linting, with a 5 s lock timeout; log lines go to `lines`. */
function stepOptions(releaseDir: string, migrateCommand: string, lines: string[]): MigrationStepOptions {
  return { releaseDir, migrateCommand, lint: true, allowUnsafe: false, lockTimeoutSeconds: 5, python: PYTHON, log: (line) => lines.push(line) };
}

function target(releaseDir: string): AlembicTarget {
  return { releaseDir, python: PYTHON, globalArgs: [], configFile: null, section: null };
}

describe.skipIf(!pythonImports('alembic, sqlalchemy'))('against real Alembic', () => {
  it('the snapshots are what Alembic renders today', async () => {
    const host = new LocalHost();
    const rendered = await host.exec('render', upgradeSqlCommand(target(join(FIXTURES, 'postgresql')), 'p01', 'p15'));
    expect(rendered.stdout).toBe(snapshot('postgresql-p01-head.sql'));
    const sqlite = await host.exec('render', upgradeSqlCommand(target(join(FIXTURES, 'sqlite')), 's01', 's07'));
    expect(sqlite.stdout).toBe(snapshot('sqlite-s01-head.sql'));
  });

  it('the render script carries on past a revision that cannot render offline (the realworld snapshots)', async () => {
    const host = new LocalHost();
    const realworld = target(join(FIXTURES, 'realworld'));
    expect((await host.exec('render', upgradeSqlCommand(realworld, 'r01', 'r11'))).stdout).toBe(snapshot('realworld-r01-head.sql'));
    const perMigration = { ...realworld, globalArgs: ['-x', 'per_migration=true'] };
    expect((await host.exec('render', upgradeSqlCommand(perMigration, 'r01', 'r11'))).stdout).toBe(
      snapshot('realworld-per-migration-r01-head.sql'),
    );
    // Plain Alembic stops at r02 and prints nothing of the revisions after it.
    const plain = await host.exec('render', sh`cd ${join(FIXTURES, 'realworld')} && ${PYTHON} -m alembic upgrade r01:r11 --sql`, {
      allowFailure: true,
    });
    expect(plain.code).not.toBe(0);
    expect(plain.stdout).not.toContain('r02 -> r03');
  });

  it('stops instead of passing when env.py renders nothing offline; migration-lint off migrates on purpose', async () => {
    const releaseDir = scratchCopy('offline-skipped');
    const host = new LocalHost();
    const lines: string[] = [];
    const base = stepOptions(releaseDir, '/usr/bin/alembic upgrade head', lines);
    const error = (await runMigrationStep(host, base).catch((caught: unknown) => caught)) as NothingRenderedError;
    expect(error).toBeInstanceOf(NothingRenderedError);
    expect(error.message).toContain("'alembic upgrade o03 --sql' rendered nothing");
    expect(error.message).toContain('context.is_offline_mode()');
    expect(error.message).toContain("'migration-lint: off'");
    expect(error.progress?.revisionBefore).toBeNull();
    expect(lines.some((line) => line.startsWith('running migrate-command'))).toBe(false);

    const off = await runMigrationStep(host, { ...base, lint: false });
    expect(off).toMatchObject({ skipped: false, revisionBefore: null, revisionAfter: 'o03', findings: [] });
  });

  it('renders a revision that branches on op.get_bind().engine.url, without the credentials', async () => {
    // The pattern of CTFd's revisions (b295b033364d, e69a79ebffd3): plain Alembic offline
    // stops with "'MockConnection' object has no attribute 'url'".
    const releaseDir = scratchCopy('realworld');
    const versions = join(releaseDir, 'migrations', 'versions');
    rmSync(versions, { recursive: true });
    mkdirSync(versions);
    writeFileSync(
      join(versions, 'u01_add_cascade_delete_to_solution_files.py'),
      [
        'from alembic import op',
        '',
        "revision = 'u01'",
        'down_revision = None',
        '',
        '',
        'def upgrade():',
        '    bind = op.get_bind()',
        '    url = str(bind.engine.url)',
        "    if url.startswith('mysql'):",
        "        op.drop_constraint('files_ibfk_3', 'files', type_='foreignkey')",
        "    elif url.startswith('postgres'):",
        "        op.drop_constraint('files_solution_id_fkey', 'files', type_='foreignkey')",
        "        op.create_foreign_key('files_solution_id_fkey', 'files', 'solutions', ['solution_id'], ['id'], ondelete='CASCADE')",
        '',
        '',
        'def downgrade():',
        '    pass',
        '',
      ].join('\n'),
    );
    const rendered = (await new LocalHost().exec('render', upgradeSqlCommand(target(releaseDir), null, 'u01'))).stdout;
    expect(rendered).not.toContain('cannot render');
    expect(rendered).toContain('ALTER TABLE files DROP CONSTRAINT files_solution_id_fkey;');
    expect(rendered).toContain('ALTER TABLE files ADD CONSTRAINT files_solution_id_fkey FOREIGN KEY(solution_id) REFERENCES solutions (id) ON DELETE CASCADE;');
    expect(rendered).not.toContain('files_ibfk_3');
    expect(rendered).not.toContain('secret');
  });

  it("the python snippet finds revision files through Alembic's ScriptDirectory", async () => {
    const host = new LocalHost();
    const result = await host.exec('locate', revisionFilesCommand(target(join(FIXTURES, 'postgresql')), ['p02', 'p15']));
    const expected = revisionFiles('postgresql');
    expect(JSON.parse(result.stdout)).toEqual({ p02: expected['p02'], p15: expected['p15'] });
  });

  it('the snippet honours -c and -n (a second ini section with its own script location)', async () => {
    const host = new LocalHost();
    const command = revisionFilesCommand(
      { ...target(join(FIXTURES, 'multihead')), configFile: 'alembic.ini', section: 'merged' },
      ['e0adc599fbeb'],
    );
    const result = JSON.parse((await host.exec('locate', command)).stdout) as Record<string, { path: string }>;
    expect(result['e0adc599fbeb']?.path).toBe('merged_migrations/versions/e0adc599fbeb_merge_widget_branches.py');
  });

  it('runs the whole step on a SQLite release: from empty, blocked by the lint, allowed, then at head', async () => {
    const releaseDir = scratchCopy('sqlite');
    const host = new LocalHost();
    const lines: string[] = [];
    const base = stepOptions(releaseDir, '/usr/bin/alembic upgrade s03', lines);

    // From an empty database every table is new: nothing to report.
    const first = await runMigrationStep(host, base);
    expect(first).toMatchObject({ skipped: false, revisionBefore: null, revisionAfter: 's03', findings: [], dialect: 'sqlite' });

    // From s03, the drops and renames of s05..s07 touch live tables.
    const upgrade = { ...base, migrateCommand: '/usr/bin/alembic upgrade head' };
    const blocked = (await runMigrationStep(host, upgrade).catch((caught: unknown) => caught)) as MigrationLintError;
    expect(blocked).toBeInstanceOf(MigrationLintError);
    expect(blocked.blocking.map((finding) => `${finding.revision} ${finding.rule}`)).toEqual([
      's05 not-null-without-default',
      's05 rename-table',
      's06 drop-table',
      's06 drop-column',
    ]);
    expect(blocked.findings.find((finding) => finding.revision === 's07')).toMatchObject({
      rule: 'table-rebuild',
      allowed: true,
      file: 'migrations/versions/s07_allowed_rebuild.py',
    });

    const forced = await runMigrationStep(host, { ...upgrade, allowUnsafe: true });
    expect(forced).toMatchObject({ skipped: false, revisionBefore: 's03', revisionAfter: 's07' });

    expect(await runMigrationStep(host, upgrade)).toMatchObject({ skipped: true, revisionBefore: 's07' });
    expect(lines).toContain('database already at head s07: skipping migrations');
  });
});
