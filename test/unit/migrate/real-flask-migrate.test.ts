/**
 * `flask db upgrade` (Flask-Migrate) as migrate-command, with Debian's python3-flask-migrate on
 * a scratch app and SQLite: Alembic runs inside the Flask app, so the step runs the command once,
 * in the release directory, and reads nothing of it (no lint, no head check, no revisions), as
 * docs/migrations.md says. Skipped where Flask-Migrate is missing.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { isLintEnabled } from '../../../src/migrate/alembic-invocation.js';
import { MigrationCommandError } from '../../../src/migrate/migration-errors.js';
import { runMigrationStep } from '../../../src/migrate/migration-step.js';
import { LocalHost } from '../support/local-host.js';
import { migrateLocally, PYTHON, pythonImports, scratchDirectory } from './python-project.js';

const MIGRATE = `${PYTHON} -m flask --app shop db upgrade`;


/** A minimal Flask app with Flask-Migrate's own migrations/ (from `flask db init`) and `revisions`. */
function flaskRelease(revisions: Record<string, string>): string {
  const dir = scratchDirectory('flask-release');
  writeFileSync(
    join(dir, 'shop.py'),
    [
      'from flask import Flask',
      'from flask_sqlalchemy import SQLAlchemy',
      'from flask_migrate import Migrate',
      'app = Flask(__name__)',
      `app.config["SQLALCHEMY_DATABASE_URI"] = ${JSON.stringify(`sqlite:///${join(dir, 'shop.db')}`)}`,
      'db = SQLAlchemy(app)',
      'migrate = Migrate(app, db)',
      '',
    ].join('\n'),
  );
  execFileSync(PYTHON, ['-m', 'flask', '--app', 'shop', 'db', 'init'], { cwd: dir, stdio: 'ignore' });
  for (const [name, text] of Object.entries(revisions)) writeFileSync(join(dir, 'migrations/versions', `${name}.py`), text);
  return dir;
}

const revision = (id: string, down: string | null, upgrade: string) => `from alembic import op
import sqlalchemy as sa
revision = ${JSON.stringify(id)}
down_revision = ${down ? JSON.stringify(down) : 'None'}
branch_labels = None
depends_on = None
def upgrade():
    ${upgrade}
def downgrade():
    pass
`;
const CREATE = revision('a1', null, 'op.create_table("item", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(40)))');
const DROP = revision('b2', 'a1', 'op.drop_column("item", "name")');

describe.skipIf(!pythonImports('flask_migrate'))('flask db upgrade as migrate-command (real Flask-Migrate)', () => {
  it('is not linted: it runs once as it is, and no revision is read', async () => {
    expect(isLintEnabled('on', MIGRATE)).toBe(false);
    // A column drop the running release would still read: the Alembic lint refuses that; through Flask nothing sees it.
    const release = flaskRelease({ a1: CREATE, b2: DROP });
    const { result, lines } = await migrateLocally(release, MIGRATE);
    expect(result).toEqual({ skipped: false, revisionBefore: null, revisionAfter: null, findings: [], dialect: null });
    expect(lines[0]).toMatch(/^migrate-command does not run alembic .*flask db upgrade.*: running it as it is, without revision checks or lint$/);
    const version = execFileSync(PYTHON, ['-c', `import sqlite3; print(sqlite3.connect(${JSON.stringify(join(release, 'shop.db'))}).execute("SELECT version_num FROM alembic_version").fetchone()[0])`], { encoding: 'utf8' });
    expect(version.trim()).toBe('b2');
  });

  it('a failing migration fails the step with its output', async () => {
    const release = flaskRelease({ a1: revision('a1', null, 'op.drop_table("no_such_table")') });
    const error = await runMigrationStep(new LocalHost(), { releaseDir: release, migrateCommand: MIGRATE, lint: false, allowUnsafe: false, lockTimeoutSeconds: 0, python: PYTHON, log: () => undefined }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MigrationCommandError);
    expect(String((error as Error).message)).toMatch(/no such table: no_such_table/);
  });
});
