import { getExecOutput } from '@actions/exec';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DeployError } from '../errors.js';
import { DEPLOY_IGNORE_FILE, deployIgnore, type DeployIgnore } from './deploy-ignore.js';

export interface PackedSource {
  archive: string;
  bytes: number;
  /** What `.deployignore` and its defaults kept out (a directory once, with a trailing `/`). */
  skipped: string[];
  /** Deletes the archive and its private directory. */
  dispose(): Promise<void>;
}

/**
 * Packs `source` into a gzipped tar, in a directory only this user can read (RUNNER_TEMP on a
 * runner). Paths matched by `.deployignore` (and its defaults) are left out. Every entry is
 * owned by 0:0 so nothing in the archive names the runner's uid (the host extracts with
 * --no-same-owner too).
 */
export async function packSource(source: string, workDir = process.env.RUNNER_TEMP || tmpdir()): Promise<PackedSource> {
  const info = await stat(source).catch(() => undefined);
  if (!info?.isDirectory()) throw new DeployError(`source directory '${source}' does not exist or is not a directory.`);
  const ignored = deployIgnore(await readFile(path.join(source, DEPLOY_IGNORE_FILE), 'utf8').catch(() => ''));
  const { kept, skipped } = await listReleaseFiles(source, ignored);
  const dir = await mkdtemp(path.join(workDir, 'graceful-deploy-'));
  const archive = path.join(dir, 'release.tar.gz');
  const list = path.join(dir, 'files');
  await writeFile(list, ['.', ...kept].map((name) => `${name}\0`).join(''));
  const result = await getExecOutput('tar', packArguments(archive, source, list), { silent: true, ignoreReturnCode: true });
  if (result.exitCode !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new DeployError(`packing '${source}' failed: ${result.stderr.trim()}`);
  }
  const { size } = await stat(archive);
  return { archive, bytes: size, skipped, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * GNU tar's arguments: the listed names only (no recursion: the list already holds every
 * directory's kept entries), read verbatim so a file named `-x` is not an option.
 */
export function packArguments(archive: string, source: string, list: string): string[] {
  return ['--owner=0', '--group=0', '--numeric-owner', '--no-recursion', '--null', '--verbatim-files-from', '-czf', archive, '-C', source, '-T', list];
}

/**
 * Walks `source` (symlinks are listed, never followed) and splits its paths into kept and
 * skipped. A skipped directory is not entered: as in git, nothing under it can be re-included.
 */
export async function listReleaseFiles(source: string, ignored: DeployIgnore): Promise<{ kept: string[]; skipped: string[] }> {
  const kept: string[] = [];
  const skipped: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(path.join(source, relative), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const name = relative ? `${relative}/${entry.name}` : entry.name;
      const isDirectory = entry.isDirectory();
      if (ignored(name, isDirectory)) {
        skipped.push(isDirectory ? `${name}/` : name);
        continue;
      }
      kept.push(name);
      if (isDirectory) await walk(name);
    }
  };
  await walk('');
  return { kept, skipped };
}
