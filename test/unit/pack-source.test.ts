import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deployIgnore } from '../../src/release/deploy-ignore.js';
import { layoutOf } from '../../src/release/layout.js';
import { packSource } from '../../src/release/pack-source.js';
import { prepareLayoutCommand, unpackReleaseCommand } from '../../src/release/release-commands.js';

/** Packs with the real tar and unpacks with the real unpack command, as the deploy does. */
let base: string;
let source: string;
const isRoot = process.getuid?.() === 0;

function write(relative: string, text = 'x'): void {
  mkdirSync(path.dirname(path.join(source, relative)), { recursive: true });
  writeFileSync(path.join(source, relative), text);
}

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'gd-pack-'));
  source = path.join(base, 'workspace');
  mkdirSync(source);
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

/** Packs `source`, unpacks it as release v2 of a scratch app dir, returns the release directory. */
async function packAndUnpack(): Promise<{ release: string; listing: string; skipped: string[] }> {
  const packed = await packSource(source, base);
  const listing = execFileSync('tar', ['-tvzf', packed.archive, '--numeric-owner'], { encoding: 'utf8' });
  const layout = layoutOf(path.join(base, 'app'));
  const archive = path.join(layout.releases, '.upload-v2-tok.tar.gz');
  spawnSync('/bin/sh', ['-c', prepareLayoutCommand(layout).text]);
  execFileSync('cp', [packed.archive, archive]);
  await packed.dispose();
  const unpack = spawnSync('/bin/sh', ['-c', unpackReleaseCommand(layout, 'v2', archive, 'tok').text], { encoding: 'utf8' });
  expect(unpack.status, unpack.stderr).toBe(0);
  return { release: layout.releaseDir('v2'), listing, skipped: packed.skipped };
}

describe('packing the release', () => {
  it("names no owner but 0:0 in the archive, whoever owns the runner's files", async () => {
    write('app.py');
    write('pkg/mod.py');
    // As root, give the files another owner; otherwise they already belong to a uid other than 0.
    if (isRoot) for (const name of ['app.py', 'pkg', 'pkg/mod.py']) chownSync(path.join(source, name), 4321, 4321);
    const { listing } = await packAndUnpack();
    const owners = listing.trim().split('\n').map((line) => line.split(/\s+/)[1]);
    expect(owners.length).toBeGreaterThanOrEqual(3);
    expect(new Set(owners)).toEqual(new Set(['0/0']));
  });

  it.runIf(isRoot)('unpacks as root into files owned by root, not by the uid that owned them on the runner', async () => {
    write('app.py');
    write('pkg/mod.py');
    for (const name of ['app.py', 'pkg', 'pkg/mod.py']) chownSync(path.join(source, name), 4321, 4321);
    const { release } = await packAndUnpack();
    for (const name of ['app.py', 'pkg', 'pkg/mod.py']) {
      const info = statSync(path.join(release, name));
      expect([name, info.uid, info.gid]).toEqual([name, 0, 0]);
    }
  });

  it('leaves out VCS metadata, credentials files and .env by default, and what .deployignore lists', async () => {
    write('app.py', 'v2');
    write('.git/config', '[http] extraheader = AUTHORIZATION: basic c2VjcmV0');
    write('gha-creds-8f2c1d.json', '{"private_key": "..."}');
    write('.env', 'SECRET=1');
    write('.env.production', 'SECRET=2');
    write('.env.example', 'SECRET=');
    write('logs/today.log');
    write('logs/keep.log');
    write('secrets/key.pem');
    write('docs/secrets/readme.md');
    write('-rf', 'a file named like an option');
    symlinkSync('app.py', path.join(source, 'link.py'));
    write('.deployignore', '# not shipped\n/secrets/\n*.log\n!keep.log\n');
    const { release, skipped } = await packAndUnpack();
    const present = (name: string) => existsSync(path.join(release, name));
    expect(readFileSync(path.join(release, 'app.py'), 'utf8')).toBe('v2');
    for (const name of ['.env.example', 'logs/keep.log', 'docs/secrets/readme.md', '-rf', '.deployignore']) expect([name, present(name)]).toEqual([name, true]);
    expect(statSync(path.join(release, 'link.py')).isFile()).toBe(true);
    for (const name of ['.git', 'gha-creds-8f2c1d.json', '.env', '.env.production', 'logs/today.log', 'secrets']) expect([name, present(name)]).toEqual([name, false]);
    expect(skipped).toEqual(['.env', '.env.production', '.git/', 'gha-creds-8f2c1d.json', 'logs/today.log', 'secrets/']);
  });

  it('lets .deployignore ship a default-excluded file again', async () => {
    write('.env', 'PUBLIC=1');
    write('.deployignore', '!.env\n');
    const { release } = await packAndUnpack();
    expect(readFileSync(path.join(release, '.env'), 'utf8')).toBe('PUBLIC=1');
  });
});

describe('deployIgnore', () => {
  it.each([
    ['.git', true, true],
    ['sub/.git', true, true],
    ['.gitignore', false, false],
    ['gha-creds-abc.json', false, true],
    ['config/gha-creds-abc.json', false, true],
    ['.env', false, true],
    ['.env.local', false, true],
    ['.env.example', false, false],
    ['app.py', false, false],
    ['.github', true, false],
  ])('%s (directory: %s) ignored: %s', (name, isDirectory, expected) => {
    expect(deployIgnore()(name, isDirectory)).toBe(expected);
  });
});
