/**
 * Releases of the database-backed fixture app (test/fixtures/migrate-app/): the sample app's
 * gunicorn.conf.py (writeRelease), its app.py replaced by one that reads `users` from the
 * database in `database.url`, and an Alembic project (alembic.ini, migrations/env.py) with the
 * chosen revisions from the fixture's revisions/ pool in migrations/versions/.
 */
import { copyFile, mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRelease } from '../../support/app-fixture.js';
import type { Sandbox } from '../../support/sandbox.js';

export const MIGRATE_APP_DIR = fileURLToPath(new URL('../../fixtures/migrate-app/', import.meta.url));

export interface MigrateRelease {
  /** Release name and the version the app reports. */
  version: string;
  /** Revision files of the fixture's revisions/ pool, without `.py`, e.g. ['r1_users', 'r2_email']. */
  revisions: string[];
  /** Columns of `users` the release's code selects (besides id), e.g. 'name, email'. */
  reads: string;
  /**
   * Written into the release as `database.url`. Default: none; the deploy links it from
   * <app-dir>/shared with `shared-paths: database.url`.
   */
  databaseUrl?: string;
}

/** Writes a complete release of the migrate app into `dir`. */
export async function writeMigrateRelease(dir: string, release: MigrateRelease, appDir?: string): Promise<void> {
  await writeRelease(dir, { version: release.version, ...(appDir ? { appDir } : {}) });
  await writeMigrateFiles(dir, release);
}

/** A release source directory (what a workflow checks out); returns its path. */
export async function migrateAppSource(release: MigrateRelease): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `gd-source-migrate-${release.version}-`));
  await writeMigrateRelease(dir, release);
  return dir;
}

/**
 * Puts a release of the migrate app on a host as a deploy leaves it (sandbox.seedRelease,
 * then this app's files); without `databaseUrl`, `database.url` links to shared/ as
 * `shared-paths` would link it.
 */
export async function seedMigrateRelease(sb: Sandbox, host: number, release: MigrateRelease): Promise<void> {
  await sb.seedRelease(host, release.version, { version: release.version });
  const dir = join(sb.hosts[host - 1].appDirBacking, 'releases', release.version);
  await writeMigrateFiles(dir, release);
  if (release.databaseUrl === undefined) await symlink(`${sb.appDir}/shared/database.url`, join(dir, 'database.url'));
}

async function writeMigrateFiles(dir: string, release: MigrateRelease): Promise<void> {
  if (!/^[a-z_]+(, [a-z_]+)*$/.test(release.reads)) throw new Error(`migrate app: reads must be column names, got '${release.reads}'`);
  const template = await readFile(join(MIGRATE_APP_DIR, 'app.py'), 'utf8');
  const app = setConstant(setConstant(template, 'VERSION', JSON.stringify(release.version)), 'READS', JSON.stringify(release.reads));
  await writeFile(join(dir, 'app.py'), app);
  await copyFile(join(MIGRATE_APP_DIR, 'alembic.ini'), join(dir, 'alembic.ini'));
  await mkdir(join(dir, 'migrations', 'versions'), { recursive: true });
  for (const name of ['env.py', 'script.py.mako']) await copyFile(join(MIGRATE_APP_DIR, 'migrations', name), join(dir, 'migrations', name));
  for (const revision of release.revisions) {
    await copyFile(join(MIGRATE_APP_DIR, 'revisions', `${revision}.py`), join(dir, 'migrations', 'versions', `${revision}.py`));
  }
  if (release.databaseUrl !== undefined) await writeFile(join(dir, 'database.url'), `${release.databaseUrl}\n`);
}

function setConstant(source: string, name: string, value: string): string {
  const line = new RegExp(`^${name} = .*$`, 'gm');
  const found = source.match(line)?.length ?? 0;
  if (found !== 1) throw new Error(`migrate app template: expected one '${name} = ...' line, found ${found}`);
  return source.replace(line, () => `${name} = ${value}`);
}
