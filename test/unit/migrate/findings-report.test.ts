import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';

import { findingAnnotations, formatFindingsMarkdown } from '../../../src/migrate/findings-report.js';
import { OFFLINE_RENDER, RULES, UNKNOWN_ALLOWANCE, UNPARSED_STATEMENT, type Finding } from '../../../src/migrate/lint/index.js';
import { lintSnapshot } from './lint-helpers.js';

let findings: Finding[];
beforeAll(async () => {
  findings = await lintSnapshot('postgresql-p01-head', 'postgresql', 'postgresql', 5);
});

describe('formatFindingsMarkdown', () => {
  it('lists problems, then allowed findings with their reason, then folded infos', () => {
    const markdown = formatFindingsMarkdown(findings, { dialect: 'postgresql' });
    const errors = findings.filter((finding) => finding.severity === 'error' && !finding.allowed).length;
    expect(markdown).toMatch(new RegExp(`^### Migration safety lint\\n\\n${errors} errors · 5 warnings · 2 allowed · 10 info \\(PostgreSQL\\)`));
    expect(markdown).toContain(
      '| error | `drop-table` | `p08` `migrations/versions/p08_drops.py` | `DROP TABLE events`<br>DROP TABLE events: the old release still queries it until every host has reloaded. ' +
        'Once the running release no longer uses events, add this line to the revision: `# graceful-deploy: allow=drop-table events unused since <release>`. |',
    );
    expect(markdown).toContain('**Allowed by the revisions**');
    expect(markdown).toContain('| v2.3 stopped reading users.handle (PR #412) |');
    expect(markdown).toContain('<details><summary>10 info findings</summary>');
    expect(markdown.indexOf('| error |')).toBeLessThan(markdown.indexOf('**Allowed by the revisions**'));
  });

  it('keeps every table row on one line', () => {
    const markdown = formatFindingsMarkdown(findings);
    for (const line of markdown.split('\n').filter((text) => text.startsWith('| '))) expect(line).toMatch(/ \|$/);
    expect(markdown).toContain('`ALTER TABLE orders ADD CONSTRAINT fk_orders_user FOREIGN KEY(user_id) REFERENCES users (id)`');
  });

  it('says when migration-lint: warn let errors through, and when there is nothing', () => {
    expect(formatFindingsMarkdown(findings, { allowUnsafe: true })).toContain('`migration-lint: warn`: these errors did not stop the deploy');
    expect(formatFindingsMarkdown([])).toContain('No findings in the pending migrations.');
  });
});

describe('findingAnnotations', () => {
  it('annotates revision files: errors, warnings, allowed as notices; infos left out', () => {
    const annotations = findingAnnotations(findings, './backend/');
    expect(annotations.find((annotation) => annotation.title === 'Migration lint: drop-table')).toEqual({
      level: 'error',
      title: 'Migration lint: drop-table',
      message: expect.stringMatching(/^DROP TABLE events: .*\nStatement: DROP TABLE events\nSafe alternative: Expand and contract/s),
      file: 'backend/migrations/versions/p08_drops.py',
      startLine: 19,
    });
    const allowed = annotations.filter((annotation) => annotation.title.endsWith('(allowed)'));
    expect(allowed.map((annotation) => [annotation.level, annotation.startLine])).toEqual([
      ['notice', 18],
      ['notice', 18],
    ]);
    expect(annotations.some((annotation) => annotation.title.includes('lock-timeout') && annotation.level === 'notice')).toBe(false);
    expect(findingAnnotations(findings)[0]?.file).toMatch(/^migrations\/versions\//);
    expect(findingAnnotations(findings, '.')[0]?.file).toMatch(/^migrations\/versions\//);
    expect(findingAnnotations(findings, '../outside')[0]?.file).toMatch(/^\.\.\/outside\/migrations\/versions\//);
    expect(findingAnnotations(findings, '.build/app')[0]?.file).toMatch(/^\.build\/app\/migrations\/versions\//);
  });
});

describe('RULES.md', () => {
  it('documents every rule the lint can report', () => {
    const doc = readFileSync(new URL('../../../src/migrate/RULES.md', import.meta.url), 'utf8');
    for (const id of [...RULES.map((rule) => rule.id), UNPARSED_STATEMENT.id, OFFLINE_RENDER.id, UNKNOWN_ALLOWANCE.id]) {
      expect(doc, id).toContain(`#### \`${id}\``);
      expect(doc, id).toContain(`[\`${id}\`](#${id})`);
    }
  });
});
