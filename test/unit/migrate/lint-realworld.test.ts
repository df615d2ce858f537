/**
 * The lint on patterns seen in public Alembic projects, from the real offline SQL of the
 * fixture project test/fixtures/migrations/realworld (rendered by the step's render script;
 * each revision's comments say what it shows). The action's lock timeout is 5 s throughout.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { blockingFindings, type Finding } from '../../../src/migrate/lint/index.js';
import { missesHead, renderErrorReason, splitOfflineSql } from '../../../src/migrate/offline-sql.js';
import { hits, lintSnapshot } from './lint-helpers.js';
import { snapshot } from './fixtures.js';

let findings: Finding[];
let perMigration: Finding[];

beforeAll(async () => {
  findings = await lintSnapshot('realworld-r01-head', 'realworld', 'postgresql', 5);
  perMigration = await lintSnapshot('realworld-per-migration-r01-head', 'realworld', 'postgresql', 5);
});

/** `<revision> <severity> <first line of the statement>` of a rule's findings. */
function graded(rule: string, from: readonly Finding[] = findings): string[] {
  return from
    .filter((finding) => finding.rule === rule)
    .map((finding) => `${finding.revision} ${finding.severity} ${finding.statement.split('\n')[0] ?? ''}`.trim());
}

describe('no silent pass', () => {
  it('an env.py that skips offline mode renders nothing for the head', () => {
    const script = splitOfflineSql(snapshot('offline-skipped-o01-head.sql'));
    expect(script.revisions).toEqual([]);
    expect(missesHead(script, 'o03')).toBe(true);
    expect(snapshot('offline-skipped-o01-head.stderr.txt')).toContain("Can't run migrations offline");
  });

  it('a rendering that reaches the head passes the check', () => {
    expect(missesHead(splitOfflineSql(snapshot('realworld-r01-head.sql')), 'r11')).toBe(false);
    // A range cut short before the head is caught too.
    const cut = snapshot('realworld-r01-head.sql').split('-- Running upgrade r10 -> r11')[0] ?? '';
    expect(missesHead(splitOfflineSql(cut), 'r11')).toBe(true);
  });
});

describe('offline-render', () => {
  it('reports the revision that reads rows by name and reason, and lints every other one', () => {
    const r02 = findings.find((finding) => finding.rule === 'offline-render' && finding.revision === 'r02');
    expect(r02).toMatchObject({ severity: 'error', allowed: false, file: 'migrations/versions/r02_backfill_from_rows.py' });
    expect(r02?.message).toContain('Revision r02 cannot be rendered as SQL offline: it reads data from the database');
    expect(r02?.message).toContain(".fetchall()");
    expect(r02?.message).toContain('`# graceful-deploy: allow=offline-render <what you checked>`');
    // Revisions after it were rendered and linted.
    expect(new Set(findings.map((finding) => finding.revision))).toEqual(
      new Set(['r02', 'r03', 'r05', 'r06', 'r07', 'r08', 'r09', 'r10', 'r11']),
    );
  });

  it('a per-revision allowance accepts it', () => {
    const r03 = findings.find((finding) => finding.rule === 'offline-render' && finding.revision === 'r03');
    expect(r03).toMatchObject({ allowed: true, line: 18, allowReason: 'reviewed by hand: reads a count, then deletes expired rows in batches' });
    expect(blockingFindings(findings).map((finding) => finding.revision)).not.toContain('r03');
  });

  it('commit() renders as what it does: COMMIT and BEGIN outside an autocommit block, nothing inside', () => {
    const r04 = splitOfflineSql(snapshot('realworld-r01-head.sql')).revisions.find((chunk) => chunk.revision === 'r04');
    expect(r04?.renderError).toBeNull();
    expect(r04?.sql.split(/;\s*/).slice(0, 5)).toEqual([
      'COMMIT', // conn.commit() before the block
      'BEGIN',
      'COMMIT', // the autocommit block itself
      'CREATE INDEX CONCURRENTLY ix_orders_user_id ON orders (user_id)',
      'BEGIN', // the block's end; the commit() inside it added nothing
    ]);
    expect(findings.filter((finding) => finding.revision === 'r04')).toEqual([]);
  });

  it('explains reads of a result, and passes other exceptions through', () => {
    expect(renderErrorReason("AttributeError: 'NoneType' object is not iterable")).toMatch(/^it reads data from the database/);
    expect(renderErrorReason('KeyError: ALEMBIC_TENANT')).toBe('its upgrade() raised KeyError: ALEMBIC_TENANT');
  });
});

describe("the migration's own lock_timeout", () => {
  it("above the action's value: a warning that names both; above 30 s: an error", () => {
    expect(graded('lock-timeout').filter((line) => !line.includes(' info '))).toEqual([
      'r05 warning ALTER TABLE orders ADD COLUMN shipped_at TIMESTAMP WITHOUT TIME ZONE',
      'r06 error ALTER TABLE users ADD COLUMN locale VARCHAR(10)',
    ]);
    const r06 = findings.find((finding) => finding.rule === 'lock-timeout' && finding.revision === 'r06');
    expect(r06?.message).toContain("SET lock_timeout = '120s' (revision r06), replacing the action's migration-lock-timeout of 5s");
    expect(r06?.message).toContain('may wait 120s');
  });

  it('RESET returns to the action: later revisions are info again', () => {
    expect(graded('lock-timeout')).toContain('r07 info ALTER TABLE users ALTER COLUMN bio TYPE TEXT');
  });

  it('with the action off, a long own timeout is still an error, a short one is fine', async () => {
    const off = await lintSnapshot('realworld-r01-head', 'realworld', 'postgresql', 0);
    const own = off.filter((finding) => finding.rule === 'lock-timeout' && ['r05', 'r06'].includes(finding.revision));
    expect(own.map((finding) => `${finding.revision} ${finding.severity}`)).toEqual(['r06 error']);
    expect(own[0]?.message).toContain('the action applies none (migration-lock-timeout: 0)');
  });
});

describe('alter-column-type', () => {
  it('widening varchar/text without USING is info, reading the old type from existing_type or an earlier ADD COLUMN', () => {
    expect(graded('alter-column-type')).toEqual([
      'r07 info ALTER TABLE users ALTER COLUMN bio TYPE TEXT',
      'r07 info ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(255)',
      'r07 info ALTER TABLE users ALTER COLUMN email TYPE VARCHAR',
      'r07 info ALTER TABLE sessions ALTER COLUMN token TYPE VARCHAR(128)', // batch_op, table from the with block
      'r07 error ALTER TABLE orders ALTER COLUMN status TYPE VARCHAR(10)',
      'r07 error ALTER TABLE orders ALTER COLUMN total TYPE NUMERIC(12, 2)',
      'r07 error ALTER TABLE orders ALTER COLUMN note TYPE TEXT USING note::text',
      'r07 info ALTER TABLE orders ALTER COLUMN reference TYPE VARCHAR(40)',
      'r07 warning ALTER TABLE users ALTER COLUMN plan TYPE TEXT',
    ]);
    const messages = findings.filter((finding) => finding.rule === 'alter-column-type').map((finding) => finding.message);
    expect(messages[0]).toBe('Changing users.bio from varchar(200) to text without USING is metadata-only on PostgreSQL: no rewrite, no scan.');
    expect(messages[4]).toMatch(/^Changing orders.status from varchar\(20\) to varchar\(10\) rewrites orders/);
    expect(messages[8]).toContain('neither the revision (existing_type=) nor an earlier statement says what type it had');
  });
});

describe('drops', () => {
  it('DROP INDEX before DROP TABLE of its table in one transaction is one finding: the table drop', () => {
    expect(graded('drop-table')).toEqual(['r08 error DROP TABLE legacy_reports']);
    expect(hits(findings, 'index-not-concurrent')).not.toContain('r08 DROP INDEX ix_legacy_reports_user_id');
  });

  it('a plain DROP INDEX is a warning', () => {
    expect(graded('index-not-concurrent')).toEqual(['r08 warning DROP INDEX ix_orders_status']);
  });

  it('drop-column and drop-table stay errors and show the exact allowance line', () => {
    const dropColumn = findings.find((finding) => finding.rule === 'drop-column');
    expect(dropColumn).toMatchObject({ severity: 'error', revision: 'r11', allowed: false });
    expect(dropColumn?.message).toContain(
      'add this line to the revision: `# graceful-deploy: allow=drop-column users.legacy_flag unused since <release>`',
    );
    const dropTable = findings.find((finding) => finding.rule === 'drop-table');
    expect(dropTable?.message).toContain('`# graceful-deploy: allow=drop-table legacy_reports unused since <release>`');
  });
});

describe('whole-table-data-change', () => {
  it('UPDATE / DELETE without WHERE sharing a transaction with DDL is an error', () => {
    expect(graded('whole-table-data-change')).toEqual([
      "r09 error UPDATE orders SET currency = 'EUR'",
      'r10 error DELETE FROM sessions', // one run-wide transaction: after r07's DDL on sessions
    ]);
    // Not reported twice: data-in-ddl-transaction leaves whole-table changes to this rule.
    expect(hits(findings, 'data-in-ddl-transaction')).toEqual([]);
  });

  it('on its own, in its own transaction, it is a warning', () => {
    expect(graded('whole-table-data-change', perMigration)).toEqual([
      "r09 error UPDATE orders SET currency = 'EUR'",
      'r10 warning DELETE FROM sessions',
    ]);
  });
});
