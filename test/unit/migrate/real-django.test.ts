/**
 * `python manage.py migrate` as migrate-command, with Debian's python3-django on a scratch
 * project and SQLite: the step runs it once, in the release directory, and reads nothing of it
 * (no lint, no head check, no revisions), as the README says. Skipped where Django is missing.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { isLintEnabled } from '../../../src/migrate/alembic-invocation.js';
import { MigrationCommandError } from '../../../src/migrate/migration-errors.js';
import { runMigrationStep } from '../../../src/migrate/migration-step.js';
import { LocalHost } from '../support/local-host.js';
import { migrateLocally, PYTHON, pythonImports, scratchDirectory } from './python-project.js';

const MIGRATE = `${PYTHON} manage.py migrate --noinput`;


/** A minimal Django project (one app, one migration dropping nothing yet) as a release directory. */
function djangoRelease(migrations: Record<string, string>): string {
  const dir = scratchDirectory('django-release');
  const files: Record<string, string> = {
    'manage.py': 'import os, sys\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")\nfrom django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n',
    'site_settings.py': `SECRET_KEY = "x"\nINSTALLED_APPS = ["shop"]\nDATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ${JSON.stringify(join(dir, 'db.sqlite3'))}}}\nUSE_TZ = True\n`,
    'shop/__init__.py': '',
    'shop/migrations/__init__.py': '',
    ...Object.fromEntries(Object.entries(migrations).map(([name, text]) => [`shop/migrations/${name}.py`, text])),
  };
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const CREATE = `from django.db import migrations, models
class Migration(migrations.Migration):
    initial = True
    operations = [migrations.CreateModel(name="Item", fields=[("id", models.AutoField(primary_key=True)), ("name", models.CharField(max_length=40))])]
`;
const DROP = `from django.db import migrations
class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RemoveField(model_name="item", name="name")]
`;

describe.skipIf(!pythonImports('django'))('python manage.py migrate as migrate-command (real Django)', () => {
  it('is not linted: it runs once as it is, and no revision is read', async () => {
    expect(isLintEnabled('on', MIGRATE)).toBe(false);
    // A column drop the running release would still read: the Alembic lint refuses that; here nothing sees it.
    const release = djangoRelease({ '0001_initial': CREATE, '0002_drop_name': DROP });
    const { result, lines } = await migrateLocally(release, MIGRATE);
    expect(result).toEqual({ skipped: false, revisionBefore: null, revisionAfter: null, findings: [], dialect: null });
    expect(lines[0]).toMatch(/^migrate-command does not run alembic .*manage\.py migrate.*: running it as it is, without revision checks or lint$/);
    const applied = execFileSync(PYTHON, ['-c', `import sqlite3; print(sqlite3.connect(${JSON.stringify(join(release, 'db.sqlite3'))}).execute("SELECT group_concat(name) FROM django_migrations WHERE app = 'shop'").fetchone()[0])`], { encoding: 'utf8' });
    expect(applied.trim()).toBe('0001_initial,0002_drop_name');
  });

  it('a failing migrate command fails the step with its output', async () => {
    const release = djangoRelease({ '0001_initial': CREATE.replace('models.CharField(max_length=40)', 'models.NoSuchField()') });
    const error = await runMigrationStep(new LocalHost(), { releaseDir: release, migrateCommand: MIGRATE, lint: false, allowUnsafe: false, lockTimeoutSeconds: 0, python: PYTHON, log: () => undefined }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MigrationCommandError);
    expect(String((error as Error).message)).toMatch(/NoSuchField/);
  });
});
