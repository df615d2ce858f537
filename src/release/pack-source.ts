import { getExecOutput } from '@actions/exec';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DeployError } from '../errors.js';

export interface PackedSource {
  archive: string;
  bytes: number;
  /** Deletes the archive and its private directory. */
  dispose(): Promise<void>;
}

/**
 * Packs `source` into a gzipped tar without VCS directories, in a directory only this user
 * can read (RUNNER_TEMP on a runner).
 */
export async function packSource(source: string, workDir = process.env.RUNNER_TEMP || tmpdir()): Promise<PackedSource> {
  const info = await stat(source).catch(() => undefined);
  if (!info?.isDirectory()) throw new DeployError(`source directory '${source}' does not exist or is not a directory.`);
  const dir = await mkdtemp(path.join(workDir, 'graceful-deploy-'));
  const archive = path.join(dir, 'release.tar.gz');
  const result = await getExecOutput(
    'tar',
    ['--exclude=.git', '--exclude=.hg', '--exclude=.svn', '-czf', archive, '-C', source, '.'],
    { silent: true, ignoreReturnCode: true },
  );
  if (result.exitCode !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new DeployError(`packing '${source}' failed: ${result.stderr.trim()}`);
  }
  const { size } = await stat(archive);
  return { archive, bytes: size, dispose: () => rm(dir, { recursive: true, force: true }) };
}
