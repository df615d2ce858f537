/**
 * Issue 7, items 10, 12, 13, 14 on a real host (sshd in a namespace, Debian's gunicorn, SSH as
 * root): what ships and who owns it, what interrupted runs leave behind, a plan that changes
 * nothing, and health-url credentials kept out of the log. One host, strategy hup.
 */
import { chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, logOf, releaseSource, removeSource } from './support/deploy-fixture.js';

describe('release files on a host reached as root', () => {
  let sb: Sandbox;
  const sources: string[] = [];
  /** Every path under the host's app dir with type/mode, owner, size, mtime and ctime. */
  const appDirSnapshot = async () => (await sb.exec(1, `cd ${sb.appDir} && find . -printf '%p %y %m %U:%G %s %T@ %C@\\n' | sort`)).stdout;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 1, version: 'v1' });
  });
  afterAll(async () => {
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  it('mode plan changes no file on the host, takes no lock, and says who holds one', async () => {
    await sb.exec(1, `mkdir ${sb.appDir}/.deploy-lock && echo 'token=0123456789ab run=acme/shop#41' > ${sb.appDir}/.deploy-lock/owner`);
    const before = await appDirSnapshot();
    const result = await deployTo(sb, { mode: 'plan', release: 'v2', strategy: 'hup' });
    expect(result.outputs.status, logOf(result)).toBe('planned');
    expect(result.summary).toMatch(/### Rollout plan\n\n- canary \(1 host\): root@[\d.]+\n/);
    expect(result.outputs.message).toBe('graceful-deploy: plan only, nothing changed: v2 would replace v1 on 1 host.');
    expect(result.stdout).toMatch(/another run holds the deploy lock now \(token=0123456789ab run=acme\/shop#41\)/);
    expect(await appDirSnapshot()).toBe(before);
    await sb.exec(1, `rm -r ${sb.appDir}/.deploy-lock`);
  });

  it('ships the release owned by root, without .git, credentials files, .env or what .deployignore lists; removes leftovers; masks health-url credentials', async () => {
    const source = await releaseSource({ version: 'v2' });
    sources.push(source);
    await mkdir(join(source, '.git'));
    await writeFile(join(source, '.git/config'), '[http]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW4=\n');
    await writeFile(join(source, 'gha-creds-5d41402abc4b.json'), '{"type": "service_account", "private_key": "..."}');
    await writeFile(join(source, '.env'), 'SECRET_KEY=from-the-runner\n');
    await writeFile(join(source, 'notes.log'), 'x');
    await writeFile(join(source, '.deployignore'), '*.log\n');
    await chown(join(source, 'app.py'), 4321, 4321);
    await chown(source, 4321, 4321);
    const releases = `${sb.appDir}/releases`;
    await sb.exec(1, `mkdir ${releases}/.incoming-v0-aaaaaaaaaaaa && touch ${releases}/.upload-v0-aaaaaaaaaaaa.tar.gz`);

    const secret = 'Pr0beT0ken-e2e';
    const result = await deployTo(sb, { source, release: 'v2', strategy: 'hup', 'health-url': `http://probe:${secret}@127.0.0.1:8000/health/ready` });
    expect(result.outputs.status, logOf(result)).toBe('deployed');
    await expectAllOn(sb, 'v2');

    const listing = (await sb.exec(1, `cd ${releases}/v2 && find . -printf '%p %U:%G\\n' | sort`)).stdout;
    expect(listing).toMatch(/^\. 0:0$/m);
    expect(listing).toMatch(/^\.\/app\.py 0:0$/m);
    expect(listing).not.toMatch(/ 4321:/);
    for (const name of ['.git', 'gha-creds-5d41402abc4b.json', '.env', 'notes.log']) expect(listing).not.toContain(`./${name}`);
    expect(listing).toContain('./.deployignore');
    expect(result.stdout).toMatch(/not shipped \(\.deployignore and its defaults\): \.env, \.git\/, gha-creds-5d41402abc4b\.json, notes\.log/);

    expect((await sb.exec(1, `ls -A ${releases}`)).stdout.trim().split('\n').sort()).toEqual(['v1', 'v2']);
    expect(result.stdout).toMatch(/removed what interrupted runs left: /);

    const lines = result.stdout.split('\n');
    expect(lines).toContain(`::add-mask::${secret}`);
    expect(lines.filter((line) => line.includes(secret) && !line.startsWith('::add-mask::'))).toEqual([]);
    expect(result.stdout).toContain('readiness gate: http://***@127.0.0.1:8000/health/ready');
  });
});
