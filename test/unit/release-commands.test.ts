import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { layoutOf, type Layout } from '../../src/release/layout.js';
import {
  discardStagedReleaseCommand,
  LOCK_HELD_EXIT,
  acquireLockCommand,
  appendAuditCommand,
  breakLockCommand,
  heartbeatCommand,
  readLockCommand,
  installCommand,
  linkSharedCommand,
  prepareLayoutCommand,
  pruneCommand,
  readStateCommand,
  releaseLockCommand,
  switchCurrentCommand,
  unpackReleaseCommand,
} from '../../src/release/release-commands.js';
import { leftoversToPrune, parseReleaseState, releasesToPrune } from '../../src/release/release-state.js';
import type { ShellFragment } from '../../src/remote/shell-quote.js';

/** The builders are pure, so they are checked by running them in a real shell on a scratch directory. */
let base: string;
let layout: Layout;
const run = (command: ShellFragment) => spawnSync('/bin/sh', ['-c', command.text], { encoding: 'utf8' });

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'gd-unit-'));
  layout = layoutOf(path.join(base, "app dir's"));
  expect(run(prepareLayoutCommand(layout)).status).toBe(0);
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

function archiveOf(files: Record<string, string>): string {
  const source = path.join(base, `src-${Math.random()}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(source, name)), { recursive: true });
    writeFileSync(path.join(source, name), text);
  }
  const archive = path.join(layout.releases, `.upload-${Math.random()}.tar.gz`);
  execFileSync('tar', ['-czf', archive, '-C', source, '.']);
  return archive;
}

describe('release commands', () => {
  it('unpacks through a temporary name, writes REVISION and removes the archive', () => {
    const archive = archiveOf({ 'app.py': 'v1' });
    expect(run(unpackReleaseCommand(layout, 'v1', archive, 'tok')).status).toBe(0);
    expect(readFileSync(path.join(layout.releaseDir('v1'), 'REVISION'), 'utf8')).toBe('v1\n');
    expect(readFileSync(path.join(layout.releaseDir('v1'), 'app.py'), 'utf8')).toBe('v1');
    expect(existsSync(archive)).toBe(false);
    expect(existsSync(path.join(layout.releases, '.incoming-v1-tok'))).toBe(false);
  });

  it('never replaces a release of the same name: fails naming it, leaves it whole and cleans up its own staging', () => {
    run(unpackReleaseCommand(layout, 'v1', archiveOf({ 'a.py': 'old', 'stale.py': 'x' }), 't1'));
    const archive = archiveOf({ 'a.py': 'new' });
    const second = run(unpackReleaseCommand(layout, 'v1', archive, 't2'));
    expect(second.status).not.toBe(0);
    expect(second.stderr).toContain(`${layout.releaseDir('v1')} already exists`);
    expect(readFileSync(path.join(layout.releaseDir('v1'), 'a.py'), 'utf8')).toBe('old');
    expect(existsSync(path.join(layout.releaseDir('v1'), 'stale.py'))).toBe(true);
    expect(existsSync(path.join(layout.releases, '.incoming-v1-t2'))).toBe(false);
  });

  it('unpacks, links and installs into another directory when given one (mode: migrate stages a scratch copy)', () => {
    const scratch = path.join(layout.releases, '.migrate-v1-tok');
    expect(run(unpackReleaseCommand(layout, 'v1', archiveOf({ 'app.py': 'v1' }), 'tok', scratch)).status).toBe(0);
    expect(readFileSync(path.join(scratch, 'REVISION'), 'utf8')).toBe('v1\n');
    expect(existsSync(layout.releaseDir('v1'))).toBe(false);
    mkdirSync(path.join(layout.shared, 'media'), { recursive: true });
    expect(run(linkSharedCommand(layout, 'v1', ['media/'], scratch)).status).toBe(0);
    expect(readlinkSync(path.join(scratch, 'media'))).toBe(path.join(layout.shared, 'media'));
    expect(run(installCommand(layout, 'v1', 'echo "$RELEASE_DIR"', scratch)).stdout.trim()).toBe(scratch);
  });

  it('switches current atomically with a relative link and records previous', () => {
    mkdirSync(layout.releaseDir('v1'));
    mkdirSync(layout.releaseDir('v2'));
    expect(run(switchCurrentCommand(layout, 'v1', undefined, 't')).status).toBe(0);
    expect(run(switchCurrentCommand(layout, 'v2', 'v1', 't')).status).toBe(0);
    expect(readlinkSync(layout.current)).toBe('releases/v2');
    expect(readlinkSync(layout.previous)).toBe('releases/v1');
    expect(run(switchCurrentCommand(layout, 'v3', 'v2', 't')).status).not.toBe(0);
    expect(readlinkSync(layout.current)).toBe('releases/v2');
    expect(switchCurrentCommand(layout, 'v2', 'v1', 't').text).toContain('mv -T');
    // Each switch is logged with its time, from and to (what settling a dead run's host reads).
    const logged = readFileSync(layout.switchLog, 'utf8').trim().split('\n');
    expect(logged).toEqual([expect.stringMatching(/^\d+\.\d+ - releases\/v1$/), expect.stringMatching(/^\d+\.\d+ releases\/v1 releases\/v2$/)]);
  });

  it('links shared files and directories, refusing a missing shared file', () => {
    mkdirSync(layout.releaseDir('v1'));
    writeFileSync(path.join(layout.shared, '.env'), 'SECRET=1');
    expect(run(linkSharedCommand(layout, 'v1', ['.env', 'media/uploads/'])).status).toBe(0);
    expect(readFileSync(path.join(layout.releaseDir('v1'), '.env'), 'utf8')).toBe('SECRET=1');
    expect(readlinkSync(path.join(layout.releaseDir('v1'), 'media/uploads'))).toBe(path.join(layout.shared, 'media/uploads'));
    const missing = run(linkSharedCommand(layout, 'v1', ['config.ini']));
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('does not exist');
  });

  it('runs the install command in the release directory with RELEASE set', () => {
    mkdirSync(layout.releaseDir('v1'));
    const result = run(installCommand(layout, 'v1', 'pwd; echo "$RELEASE"'));
    expect(result.stdout.trim().split('\n')).toEqual([layout.releaseDir('v1'), 'v1']);
  });

  it('takes the lock once, names the holder, and releases only its own', () => {
    expect(run(acquireLockCommand(layout, 'token=aaa run=1')).status).toBe(0);
    const second = run(acquireLockCommand(layout, 'token=bbb run=2'));
    expect(second.status).toBe(LOCK_HELD_EXIT);
    expect(second.stdout).toContain('token=aaa run=1');
    run(releaseLockCommand(layout, 'bbb'));
    expect(existsSync(layout.lock)).toBe(true);
    run(releaseLockCommand(layout, 'aaa'));
    expect(existsSync(layout.lock)).toBe(false);
  });

  it('keeps a heartbeat the holder alone can touch, and reports its age to whoever finds the lock', () => {
    expect(run(acquireLockCommand(layout, 'token=aaa\nrun=1')).status).toBe(0);
    const heartbeat = path.join(layout.lock, 'heartbeat');
    const old = new Date(Math.floor(Date.now() / 1000) * 1000 - 120_000); // whole seconds: mtimeMs round-trips exactly
    utimesSync(heartbeat, old, old);
    const held = run(acquireLockCommand(layout, 'token=bbb'));
    expect(held.stdout).toMatch(/^token=aaa\nrun=1\nheartbeat-age=1[12]\d\n$/);
    run(heartbeatCommand(layout, 'bbb'));
    expect(statSync(heartbeat).mtimeMs).toBe(old.getTime());
    run(heartbeatCommand(layout, 'aaa'));
    expect(Date.now() - statSync(heartbeat).mtimeMs).toBeLessThan(5000);
    expect(run(readLockCommand(layout)).stdout).toMatch(/^locked=yes\ntoken=aaa\nrun=1\nheartbeat-age=[0-4]\n$/);
  });

  it('breaks only the lock it inspected', () => {
    expect(run(readLockCommand(layout)).stdout).toBe('locked=no\n');
    expect(run(breakLockCommand(layout, 'aaa')).stdout).toBe('gone\n');
    run(acquireLockCommand(layout, 'token=bbb'));
    expect(run(breakLockCommand(layout, 'aaa')).stdout).toBe('changed\n');
    expect(existsSync(layout.lock)).toBe(true);
    expect(run(breakLockCommand(layout, 'bbb')).stdout).toBe('removed\n');
    expect(existsSync(layout.lock)).toBe(false);
  });

  it('appends audit lines, quoting whatever they hold', () => {
    run(appendAuditCommand(layout, "one $(touch pwned) 'x'"));
    run(appendAuditCommand(layout, 'two'));
    expect(readFileSync(path.join(layout.appDir, 'deploy.log'), 'utf8')).toBe("one $(touch pwned) 'x'\ntwo\n");
    expect(existsSync('pwned')).toBe(false);
  });

  it('reads the state and prunes the oldest, never current, previous or the new release', () => {
    for (const [index, name] of ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'].entries()) {
      mkdirSync(layout.releaseDir(name));
      execFileSync('touch', ['-d', `2020-01-0${index + 1}`, layout.releaseDir(name)]);
    }
    run(switchCurrentCommand(layout, 'r1', undefined, 't'));
    run(switchCurrentCommand(layout, 'r2', 'r1', 't'));
    const state = parseReleaseState(run(readStateCommand(layout)).stdout);
    expect(state.current).toBe('r2');
    expect(state.previous).toBe('r1');
    expect(state.releases.map((release) => release.name)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
    const doomed = releasesToPrune(state, 3, [state.current, state.previous, 'r6']);
    expect(doomed).toEqual(['r3', 'r4', 'r5']);
    expect(run(pruneCommand(layout, doomed)).status).toBe(0);
    expect(parseReleaseState(run(readStateCommand(layout)).stdout).releases.map((release) => release.name)).toEqual(['r1', 'r2', 'r6']);
  });

  it('reads what interrupted runs left and prunes it, never this run\'s nor the lock holder\'s', () => {
    mkdirSync(layout.releaseDir('v1'));
    const leftovers = ['.upload-v2-aaaaaaaaaaaa.tar.gz', '.incoming-v2-aaaaaaaaaaaa', '.replaced-v1-bbbbbbbbbbbb', '.incoming-v3-cccccccccccc', '.upload-v3-dddddddddddd.tar.gz', '.incoming-notoken'];
    for (const name of leftovers) mkdirSync(path.join(layout.releases, name));
    expect(run(acquireLockCommand(layout, 'token=cccccccccccc run=acme/shop#42')).status).toBe(0);
    const state = parseReleaseState(run(readStateCommand(layout)).stdout);
    expect(state.lockOwner).toBe('token=cccccccccccc run=acme/shop#42');
    expect(state.leftovers.sort()).toEqual([...leftovers].sort());
    expect(state.releases.map((release) => release.name)).toEqual(['v1']);
    const doomed = leftoversToPrune(state, 'dddddddddddd');
    expect(doomed.sort()).toEqual(['.incoming-v2-aaaaaaaaaaaa', '.replaced-v1-bbbbbbbbbbbb', '.upload-v2-aaaaaaaaaaaa.tar.gz']);
    expect(run(pruneCommand(layout, doomed)).status).toBe(0);
    expect(readdirSync(layout.releases).sort()).toEqual(['.incoming-notoken', '.incoming-v3-cccccccccccc', '.upload-v3-dddddddddddd.tar.gz', 'v1']);
  });
});

describe('discardStagedReleaseCommand, for real', () => {
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(path.join(tmpdir(), 'gd-discard-'));
    for (const name of ['v1', 'v2', 'v3']) mkdirSync(path.join(base, 'releases', name), { recursive: true });
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));
  const discard = (release: string) => execFileSync('/bin/sh', ['-c', discardStagedReleaseCommand(layoutOf(base), release).text], { encoding: 'utf8' });

  it('removes a release no link names, saying so', () => {
    execFileSync('ln', ['-s', 'releases/v1', path.join(base, 'current')]);
    expect(discard('v2')).toBe('removed\n');
    expect(readdirSync(path.join(base, 'releases')).sort()).toEqual(['v1', 'v3']);
  });

  it('never removes what current or previous names, relative or absolute, with or without a trailing slash', () => {
    execFileSync('ln', ['-s', `${base}/releases/v2/`, path.join(base, 'current')]);
    execFileSync('ln', ['-s', 'releases/v3', path.join(base, 'previous')]);
    expect(discard('v2')).toBe('');
    expect(discard('v3')).toBe('');
    expect(readdirSync(path.join(base, 'releases')).sort()).toEqual(['v1', 'v2', 'v3']);
  });
});
