/**
 * What the tests with a real Python project share: the interpreter, whether it has a module
 * (Debian's python3-django, python3-flask-migrate, alembic), and scratch directories removed
 * after each test.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { isLintEnabled } from '../../../src/migrate/alembic-invocation.js';
import { runMigrationStep, type MigrationResult } from '../../../src/migrate/migration-step.js';
import { LocalHost } from '../support/local-host.js';

export const PYTHON = '/usr/bin/python3';

/** Whether PYTHON imports `modules` (comma-separated, as in an import statement). */
export function pythonImports(modules: string): boolean {
  try {
    execFileSync(PYTHON, ['-c', `import ${modules}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A new empty directory, removed after the test that made it. */
export function scratchDirectory(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  made.push(dir);
  return dir;
}

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Runs the migration step with `migrateCommand` in `releaseDir` as the action would by default (migration-lint: on), on this machine. */
export async function migrateLocally(releaseDir: string, migrateCommand: string): Promise<{ result: MigrationResult; lines: string[] }> {
  const lines: string[] = [];
  const result = await runMigrationStep(new LocalHost(), {
    releaseDir,
    migrateCommand,
    lint: isLintEnabled('on', migrateCommand),
    allowUnsafe: false,
    lockTimeoutSeconds: 5,
    python: PYTHON,
    log: (line) => lines.push(line),
  });
  return { result, lines };
}
