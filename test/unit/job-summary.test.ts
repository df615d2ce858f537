import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeJobSummary } from '../../src/report/job-summary.js';
import type { DeployOutcome } from '../../src/report/reporter.js';

/** The summary is written to the file the runner renders (GITHUB_STEP_SUMMARY); read it back. */
let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'gd-summary-'));
  file = path.join(dir, 'summary.md');
  writeFileSync(file, '');
  process.env.GITHUB_STEP_SUMMARY = file;
});
afterEach(() => {
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
