import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeJobSummary } from '../../src/report/job-summary.js';
import { blameHost } from '../../src/report/outcome-text.js';
import type { DeployOutcome, HostReport } from '../../src/report/reporter.js';
import { runFacts } from '../../src/report/run-links.js';
import { cancelledMessage } from '../../src/rollout/deploy-context.js';

/**
 * The summary is written to the file the runner renders (GITHUB_STEP_SUMMARY); read it back.
 * One file for the whole module, emptied before each test: @actions/core remembers the path.
 */
let dir: string;
let file: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'gd-summary-'));
  file = path.join(dir, 'summary.md');
  process.env.GITHUB_STEP_SUMMARY = file;
});
beforeEach(() => writeFileSync(file, ''));
afterAll(() => {
  delete process.env.GITHUB_STEP_SUMMARY;
  rmSync(dir, { recursive: true, force: true });
});

describe('job summary', () => {
  it('shows what the app and the hosts answered as text, never as markup', async () => {
    const outcome: DeployOutcome = {
      status: 'deployed',
      release: 'v2',
      previousRelease: 'v1<img src=x onerror=alert(1)>',
      strategy: 'usr2',
      hosts: [
        {
          host: 'root@web1',
          status: 'deployed',
          release: 'v2',
          health: '200 v2"><script>alert(1)</script>\n\n# injected heading\n[click](https://evil.example)',
        },
      ],
      migration: { host: 'root@web1', skipped: false, revisionBefore: 'r1`<b>x</b>', revisionAfter: 'r2', findings: [] } as unknown as DeployOutcome['migration'],
    };
    await writeJobSummary(outcome);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toMatch(/<img|<script/);
    expect(text).not.toMatch(/^# injected/m);
    expect(text).not.toContain('[click](');
    expect(text).toContain('v1&lt;img src=x onerror=alert(1)&gt;');
    expect(text).toContain('200 v2&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt; &#35; injected heading &#91;click&#93;(https://evil.example)');
    // A code span shows markup as text; a backtick inside would end it early, so it is replaced.
    expect(text).toContain("Database migrated from `r1'<b>x</b>` to `r2`.");
  });
});

describe('job summary: the load balancer', () => {
  it('shows per server how long it was drained, its sessions at drain, the errors HAProxy saw and the traffic gate', async () => {
    const outcome: DeployOutcome = {
      status: 'rolled-back',
      release: 'v3',
      strategy: 'hup',
      hosts: [
        { host: 'root@web1', status: 'rolled-back', balancer: { server: 'web1', drainedSeconds: 9.4, sessionsAtDrain: 3, errorsDuringReload: 0, traffic: 'FAILED: error rate 100.0% is more than 2.0% above the old release\'s 0.0%' } },
        { host: 'root@web2', status: 'pending', balancer: { server: 'web2' } },
      ],
    };
    await writeJobSummary(outcome);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('### Load balancer');
    expect(text).toContain('| root@web1 | web1 | 9.4 s | 3 | 0 | FAILED: error rate 100.0% is more than 2.0% above the old release&#39;s 0.0% |');
    expect(text).toContain('| root@web2 | web2 | not drained | — | — | — |');
  });

  it('has no balancer section without a balancer', async () => {
    await writeJobSummary({ status: 'deployed', release: 'v2', strategy: 'usr2', hosts: [{ host: 'root@web1', status: 'deployed' }] });
    expect(readFileSync(file, 'utf8')).not.toContain('Load balancer');
  });
});

/**
 * The four outcomes a person reads most, and a release that cannot load, as the runner renders
 * them: each summary is a committed file (test/unit/__snapshots__/job-summary/), reviewed like code.
 */
describe('job summary: what happened, snapshots', () => {
  const env = { GITHUB_SERVER_URL: 'https://github.com', GITHUB_REPOSITORY: 'acme/shop', GITHUB_SHA: '3f2c1e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e', GITHUB_ACTOR: 'octocat' };
  const hosts = (overrides: Partial<HostReport>[]): HostReport[] =>
    ['web1', 'web2', 'web3'].map((name, index) => ({
      host: `deploy@${name}`,
      status: 'pending',
      release: 'v3',
      previousRelease: 'v2',
      oldMasterPid: 4100 + index,
      oldWorkers: [4200 + index * 10, 4201 + index * 10],
      batch: index === 0 ? 0 : 1,
      ...(index === 0 && { canary: true }),
      ...overrides[index],
    }));
  const snapshot = async (name: string, outcome: DeployOutcome, mode: Parameters<typeof runFacts>[2], seconds: number) => {
    await writeJobSummary(outcome, runFacts(env, outcome, mode, seconds));
    const text = readFileSync(file, 'utf8');
    await expect(text).toMatchFileSnapshot(`__snapshots__/job-summary/${name}.md`);
    return text;
  };

  it('success: who, how long, the commit and the compare links, each host with its batch', async () => {
    const done = (index: number): Partial<HostReport> => ({ status: 'deployed', newMasterPid: 5100 + index, newWorkers: [5200 + index * 10, 5201 + index * 10], secondsToReady: 2.4 + index / 10, health: '200 v3' });
    const outcome: DeployOutcome = { status: 'deployed', release: 'v3', previousRelease: 'v2', strategy: 'usr2', hosts: hosts([done(0), done(1), done(2)]) };
    const text = await snapshot('success', outcome, 'deploy', 72.4);
    expect(text).toContain('Started by <b>octocat</b> · took 1 min 12 s');
    expect(text).toContain('<a href="https://github.com/acme/shop/commit/3f2c1e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"><code>3f2c1e9</code></a>');
    expect(text).toContain('<a href="https://github.com/acme/shop/compare/v2...v3">v2…v3</a>');
    expect(text).toContain('<td>deploy@web1</td><td>canary</td><td>✅ deployed</td>');
    expect(text).toContain('<td>deploy@web3</td><td>1</td>');
    expect(text).not.toContain('Cause');
  });

  const serverLog = {
    source: '/var/log/gunicorn/error.log',
    lines: ['[2026-12-05 07:20:01 +0000] [4300] [ERROR] Exception in worker process', 'Traceback (most recent call last):', '  File "/srv/app/releases/v3/app.py", line 4, in <module>', 'RuntimeError: no <DATABASE_URL>'].join('\n'),
  };
  it('rollback: the cause first, then what every host serves, the failing host\'s error on its row', async () => {
    const error = '[deploy@web1] did not pass 3 checks in a row within 60s: last status 503';
    const outcome: DeployOutcome = {
      status: 'rolled-back',
      release: 'v3',
      previousRelease: 'v2',
      strategy: 'usr2',
      error,
      hosts: hosts([{ status: 'rolled-back', release: 'v2', newMasterPid: 4100, newWorkers: [4300, 4301], error, serverLog }, {}, {}]),
    };
    const text = await snapshot('rollback', outcome, 'deploy', 95);
    expect(text.indexOf('<b>Cause:</b>')).toBeLessThan(text.indexOf('<table>'));
    expect(text.indexOf('<b>Cause:</b>')).toBeLessThan(text.indexOf('Started by'));
    expect(text).toContain('deploy of v3 failed on deploy@web1; every host it reached is back on v2.');
    expect(text).toContain('<td>did not pass 3 checks in a row within 60s: last status 503</td>');
    expect(text).toContain("<details><summary>Last lines of deploy@web1's server log (/var/log/gunicorn/error.log)</summary>");
    expect(text).toContain('RuntimeError: no &lt;DATABASE_URL&gt;');
    expect(text.indexOf('<details>')).toBeGreaterThan(text.indexOf('</table>'));
  });

  it('cancel: which release each host serves, and the two ways on', async () => {
    const outcome: DeployOutcome = {
      status: 'cancelled',
      release: 'v3',
      previousRelease: 'v2',
      strategy: 'usr2',
      hosts: hosts([{ status: 'deployed', newMasterPid: 5100, newWorkers: [5200, 5201], secondsToReady: 2.5, health: '200 v3' }, { status: 'rolled-back', release: 'v2' }, {}]),
    };
    outcome.error = `${cancelledMessage(outcome)} (at: switch deploy@web2)`;
    const text = await snapshot('cancel', outcome, 'deploy', 31.2);
    expect(text).toContain('deploy of v3 was cancelled; v3 on deploy@web1; v2 on deploy@web2, deploy@web3.');
    expect(text).toContain('### Next steps');
    expect(text).toContain('To finish: deploy `v3` again with `hosts: deploy@web2, deploy@web3`');
    expect(text).toContain('To undo: run `mode: rollback` with `hosts: deploy@web1`');
  });

  it('plan: the rollout plan, nothing changed', async () => {
    const outcome: DeployOutcome = {
      status: 'planned',
      release: 'v3',
      previousRelease: 'v2',
      strategy: 'usr2',
      hosts: hosts([{ status: 'planned' }, { status: 'planned' }, { status: 'planned' }]),
      plan: ['canary (1 host): deploy@web1', 'batch 1 (2 hosts): deploy@web2, deploy@web3'],
    };
    const text = await snapshot('plan', outcome, 'plan', 4.3);
    expect(text).toContain('### Rollout plan');
    expect(text).toContain('- canary (1 host): deploy@web1\n- batch 1 (2 hosts): deploy@web2, deploy@web3');
    expect(text).toContain('plan only, nothing changed: v3 would replace v2 on 3 hosts.');
  });

  it('a re-run of the release already serving (if-current: skip): nothing done, and no cause, since nothing failed', async () => {
    const outcome: DeployOutcome = { status: 'unchanged', release: 'v3', previousRelease: 'v3', strategy: 'usr2', hosts: hosts([{ status: 'unchanged', previousRelease: 'v3' }, { status: 'unchanged', previousRelease: 'v3' }, { status: 'unchanged', previousRelease: 'v3' }]) };
    const text = await snapshot('unchanged', outcome, 'deploy', 3.1);
    expect(text).toContain('v3 is already current and serving on 3 hosts: nothing was deployed.');
    expect(text).not.toContain('Cause');
    expect(text).not.toContain('unknown error');
    expect(text).toContain('<td>⏭️ already current</td><td>v3</td>');
  });

  it('a release that cannot load: the cause, then the tail of what the check printed, verbatim', async () => {
    const error = [
      "[deploy@web2] the new release in /srv/app/releases/v3 cannot be loaded by the master's interpreter (/srv/app/venv/bin/python3); nothing was switched or reloaded:",
      'Traceback (most recent call last):',
      '  File "/srv/app/releases/v3/app.py", line 3, in <module>',
      '    import missing_module',
      "ModuleNotFoundError: No module named 'missing_module'",
    ].join('\n');
    const outcome: DeployOutcome = { status: 'failed', release: 'v3', previousRelease: 'v2', strategy: 'usr2', error, hosts: hosts([{}, {}, {}]) };
    blameHost(outcome, 'deploy@web2', error);
    const text = await snapshot('cannot-load', outcome, 'deploy', 12.8);
    expect(text).toContain('<pre><code>Traceback (most recent call last):\n  File &quot;/srv/app/releases/v3/app.py&quot;, line 3, in &lt;module&gt;\n    import missing_module\nModuleNotFoundError: No module named &#39;missing_module&#39;</code></pre>');
    expect(text).toContain('<td>the new release in /srv/app/releases/v3 cannot be loaded');
  });
});
