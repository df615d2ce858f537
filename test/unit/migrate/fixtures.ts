/**
 * Access to the Alembic fixture projects in test/fixtures/migrations and to the snapshots of
 * their real output (regenerate.sh writes them).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import type { RevisionFile } from '../../../src/migrate/lint/index.js';

export const FIXTURES = fileURLToPath(new URL('../../fixtures/migrations/', import.meta.url));

/** A file of snapshots/, e.g. `postgresql-p01-head.sql`. */
export function snapshot(name: string): string {
  return readFileSync(join(FIXTURES, 'snapshots', name), 'utf8');
}

/**
 * Revision id -> file of a fixture project, as the step gets it from the host (path relative
 * to the project directory, which plays the release directory).
 */
export function revisionFiles(project: string, versions = 'migrations/versions'): Record<string, RevisionFile> {
  const files: Record<string, RevisionFile> = {};
  for (const name of readdirSync(join(FIXTURES, project, versions)).filter((file) => file.endsWith('.py'))) {
    const source = readFileSync(join(FIXTURES, project, versions, name), 'utf8');
    const revision = /^revision = '([^']+)'/m.exec(source)?.[1];
    if (revision) files[revision] = { path: `${versions}/${name}`, source };
  }
  return files;
}
