/**
 * Lints a corpus of real Alembic revisions as the action does, each revision as the only
 * pending one of a deploy, and prints one line per finding (tab-separated) plus totals.
 *
 *     npx tsx bench/lint-corpus/lint-corpus.ts [/tmp/lint-corpus]
 *
 * The corpus directory holds one subdirectory per project with its revision files (see
 * README.md for how to rebuild it from sources.txt). Each revision is copied into a scratch
 * Alembic project (PostgreSQL URL, offline only) with `down_revision = None`, rendered with the
 * step's render script, and linted with the default migration-lock-timeout of 5 s. Imports of
 * the project's own packages are stubbed, so a revision that needs them to build SQL shows up
 * as an offline-render finding. Needs Python with alembic and SQLAlchemy (Debian: /usr/bin/python3).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { lintMigrations } from '../../src/migrate/lint/index.js';
import { missesHead, splitOfflineSql } from '../../src/migrate/offline-sql.js';
import { RENDER_OFFLINE_SCRIPT } from '../../src/migrate/render-offline-script.js';

const PYTHON = process.env['PYTHON'] ?? '/usr/bin/python3';
const corpus = process.argv[2] ?? '/tmp/lint-corpus';
/** When set, each revision's rendered SQL is written there as <project>-<revision>.sql, for the review by hand. */
const dumpDir = process.env['LINT_CORPUS_SQL'];

const ENV_PY = `
import importlib.abc, importlib.machinery, sys
from unittest import mock
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from alembic import context

if not hasattr(sa, "UUID"):  # SQLAlchemy 2 names it at the top level
    sa.UUID = postgresql.UUID

class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any import that is not installed becomes a permissive stub module."""
    def find_spec(self, name, path, target=None):
        if importlib.machinery.PathFinder.find_spec(name.split(".")[0]) is None:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec):
        module = mock.MagicMock()
        module.__path__ = []
        return module
    def exec_module(self, module):
        pass

sys.meta_path.append(_Stubs())
context.configure(url="postgresql://corpus@db.invalid/corpus", literal_binds=True, dialect_opts={"paramstyle": "named"})
with context.begin_transaction():
    context.run_migrations()
`;

const INI = '[alembic]\nscript_location = migrations\nsqlalchemy.url = postgresql://corpus@db.invalid/corpus\n';

let revisions = 0;
let silent = 0;
const counts: Record<string, number> = {};
for (const project of readdirSync(corpus)) {
  for (const name of readdirSync(join(corpus, project)).filter((file) => file.endsWith('.py'))) {
    const source = readFileSync(join(corpus, project, name), 'utf8');
    const revision = /^revision\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]/m.exec(source)?.[1];
    if (!revision) continue;
    revisions += 1;
    const dir = mkdtempSync(join(tmpdir(), 'lint-corpus-'));
    mkdirSync(join(dir, 'migrations', 'versions'), { recursive: true });
    writeFileSync(join(dir, 'alembic.ini'), INI);
    writeFileSync(join(dir, 'migrations', 'env.py'), ENV_PY);
    writeFileSync(join(dir, 'migrations', 'versions', basename(name)), source.replace(/^down_revision\s*(?::[^=]*)?=.*$/m, 'down_revision = None'));
    let stdout = '';
    try {
      stdout = execFileSync(PYTHON, ['-c', RENDER_OFFLINE_SCRIPT, 'upgrade', revision, '--sql'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      console.log(`${project}\t${revision}\tRENDER-FAILED\t${String((error as { stderr?: string }).stderr ?? error).trim().split('\n').pop()}`);
    }
    rmSync(dir, { recursive: true, force: true });
    if (dumpDir) writeFileSync(join(dumpDir, `${project}-${revision}.sql`), stdout);
    const script = splitOfflineSql(stdout);
    if (missesHead(script, revision)) {
      silent += 1;
      continue;
    }
    const findings = await lintMigrations({
      dialect: 'postgresql',
      script,
      files: { [revision]: { path: name, source } },
      lockTimeoutSeconds: 5,
    });
    for (const finding of findings.filter((item) => item.severity !== 'info')) {
      const key = `${finding.severity}${finding.allowed ? ' (allowed)' : ''} ${finding.rule}`;
      counts[key] = (counts[key] ?? 0) + 1;
      console.log(`${project}\t${revision}\t${finding.severity}\t${finding.rule}\t${finding.statement.split('\n')[0] ?? ''}\t${finding.message}`);
    }
  }
}
console.log(`\n${revisions} revisions, ${silent} rendered nothing (no silent pass: these would stop the deploy)`);
for (const [key, count] of Object.entries(counts).sort()) console.log(`${count}\t${key}`);
