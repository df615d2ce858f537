/**
 * Deploy locks between runs, on 2 real hosts under load: two runs started at the same moment
 * never both change a host (one waits with lock-wait, or fails naming the holder); the lock of
 * a run that died is refused at once and removed by `mode: unlock`; every run leaves one line
 * per host in <app-dir>/deploy.log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActionResult } from '../support/run-action.js';
import { startServingSandbox, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, hostsOutput, logOf, releaseSource, removeSource, underLoad } from './support/deploy-fixture.js';

describe('deploy locks and the audit log on 2 hosts under load', () => {
  let sb: Sandbox;
  const sources: string[] = [];
  const source = async (version: string) => {
    const dir = await releaseSource({ version });
    sources.push(dir);
    return dir;
  };
  const auditOf = async (host: number) => (await sb.exec(host, `cat ${sb.appDir}/deploy.log 2>/dev/null`)).stdout.trim().split('\n').filter(Boolean);
  const lockOf = async (host: number) => (await sb.exec(host, `test -d ${sb.appDir}/.deploy-lock && cat ${sb.appDir}/.deploy-lock/owner`)).stdout;

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 2, version: 'v1' });
  });
  afterAll(async () => {
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  it('two runs started together with lock-wait: one deploys, the other waits for it, then deploys', async () => {
    const [v2, v3] = [await source('v2'), await source('v3')];
    const [a, b] = (
      await underLoad(sb, () =>
        Promise.all([
          deployTo(sb, { source: v2, release: 'v2', strategy: 'hup', 'lock-wait': '180' }, { GITHUB_REPOSITORY: 'acme/shop', GITHUB_RUN_ID: '2', GITHUB_ACTOR: 'alice' }),
          deployTo(sb, { source: v3, release: 'v3', strategy: 'hup', 'lock-wait': '180' }, { GITHUB_REPOSITORY: 'acme/shop', GITHUB_RUN_ID: '3', GITHUB_ACTOR: 'bob' }),
        ]),
      )
    ).result;
    expect(a.code, logOf(a)).toBe(0);
    expect(b.code, logOf(b)).toBe(0);
    const waited = [a, b].filter((result) => /waiting up to 180s for the deploy lock, held by run https:\/\/github.com\/acme\/shop\/actions\/runs\/[23]/.test(result.stdout));
    expect(waited, 'exactly one run waited for the other').toHaveLength(1);
    const last = waited[0] === a ? 'v2' : 'v3';
    await expectAllOn(sb, last);
    // Both hosts saw the two runs in the same order, each one whole: never a mixed host.
    const first = last === 'v2' ? 'v3' : 'v2';
    for (const host of sb.hosts) {
      const lines = await auditOf(host.index);
      expect(lines, `h${host.index} deploy.log`).toHaveLength(2);
      expect(lines[0]).toMatch(new RegExp(` deploy v1 -> ${first} strategy=hup result=deployed `));
      expect(lines[1]).toMatch(new RegExp(` deploy ${first} -> ${last} strategy=hup result=deployed `));
      expect(await lockOf(host.index)).toBe('');
    }
  });

  it('two runs started together with lock-wait 0: one deploys, the other fails naming the holder and changes nothing', async () => {
    const [v4, v5] = [await source('v4'), await source('v5')];
    const [a, b] = (
      await underLoad(sb, () =>
        Promise.all([
          deployTo(sb, { source: v4, release: 'v4', strategy: 'hup', 'lock-wait': '0' }, { GITHUB_REPOSITORY: 'acme/shop', GITHUB_RUN_ID: '4' }),
          deployTo(sb, { source: v5, release: 'v5', strategy: 'hup', 'lock-wait': '0' }, { GITHUB_REPOSITORY: 'acme/shop', GITHUB_RUN_ID: '5' }),
        ]),
      )
    ).result;
    const [winner, loser] = a.code === 0 ? [a, b] : [b, a];
    expect(winner.code, logOf(winner)).toBe(0);
    expect(loser.code, logOf(loser)).not.toBe(0);
    expect(loser.outputs.status).toBe('failed');
    expect(loser.stdout + loser.stderr).toMatch(/another deploy holds .*\.deploy-lock: run https:\/\/github.com\/acme\/shop\/actions\/runs\/[45] .*lock-wait is 0/);
    const won = winner === a ? 'v4' : 'v5';
    const lost = won === 'v4' ? 'v5' : 'v4';
    await expectAllOn(sb, won);
    for (const host of sb.hosts) {
      expect((await sb.exec(host.index, `test -e ${sb.appDir}/releases/${lost} && echo staged`)).stdout, `h${host.index}: the loser staged nothing`).toBe('');
      expect(await lockOf(host.index)).toBe('');
    }
  });

  it('the lock of a dead run is refused at once, mode unlock removes it naming the run, then a deploy succeeds', async () => {
    const lock = `${sb.appDir}/.deploy-lock`;
    await sb.exec(2, `mkdir ${lock} && printf 'token=dead\\nrun=https://github.com/acme/shop/actions/runs/99\\nactor=carol\\n' > ${lock}/owner && touch -d '10 minutes ago' ${lock}/heartbeat`);
    const v6 = await source('v6');
    const refused = await deployTo(sb, { source: v6, release: 'v6', strategy: 'hup', 'lock-wait': '300' });
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toMatch(/held by run https:\/\/github.com\/acme\/shop\/actions\/runs\/99 by carol .*no longer running.*mode: unlock/);
    expect(await lockOf(2)).toContain('token=dead');
    expect(await lockOf(1)).toBe('');

    const unlocked: ActionResult = await deployTo(sb, { mode: 'unlock', source: '', release: '' });
    expect(unlocked.code, logOf(unlocked)).toBe(0);
    expect(unlocked.outputs.status).toBe('unlocked');
    expect(hostsOutput(unlocked).map((host) => host.removedLock ?? '')).toEqual(['', expect.stringMatching(/^run https:\/\/github.com\/acme\/shop\/actions\/runs\/99 by carol \(last heartbeat \d+s ago\)$/)]);
    expect((await auditOf(2)).at(-1)).toMatch(/ unlock - -> - strategy=auto result=unlocked /);
    expect(await lockOf(2)).toBe('');

    const deployed = await underLoad(sb, () => deployTo(sb, { source: v6, release: 'v6', strategy: 'hup' }));
    expect(deployed.result.code, logOf(deployed.result)).toBe(0);
    await expectAllOn(sb, 'v6');
  });
});
