import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeJobSummary } from '../../src/report/job-summary.js';
import type { DeployOutcome } from '../../src/report/reporter.js';

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
