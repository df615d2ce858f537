/** SQLite and MySQL rules on the real offline SQL of the sqlite and mysql fixture projects. */
import { beforeAll, describe, expect, it } from 'vitest';

import { lintMigrations, parseStatements, type Finding } from '../../../src/migrate/lint/index.js';
import { splitOfflineSql } from '../../../src/migrate/offline-sql.js';
import { hits, lintSnapshot } from './lint-helpers.js';

describe('SQLite', () => {
  let findings: Finding[];
  beforeAll(async () => {
    findings = await lintSnapshot('sqlite-s01-head', 'sqlite', 'sqlite', 5);
  });

  it('reports a batch-mode rebuild as one table-rebuild, not a drop plus a rename', () => {
    expect(findings.filter((finding) => finding.rule === 'table-rebuild').map((finding) => finding.revision)).toEqual([
      's02',
      's03',
      's07',
    ]);
    const s02 = findings.filter((finding) => finding.revision === 's02');
    expect(s02.map((finding) => finding.rule)).toEqual(['table-rebuild']);
    expect(s02[0]?.statement).toMatch(
      /^CREATE TABLE _alembic_tmp_users \([\s\S]*;\nINSERT INTO _alembic_tmp_users [\s\S]*;\nDROP TABLE users;\nALTER TABLE _alembic_tmp_users RENAME TO users;$/,
    );
  });

  it('names a column the rebuild copies under a new name', () => {
    const s03 = findings.find((finding) => finding.revision === 's03');
    expect(s03?.message).toContain('renaming column score to points');
    expect(findings.find((finding) => finding.revision === 's02')?.message).not.toContain('renaming');
  });

  it('a batch add_column that needs no copy is no rebuild', () => {
    expect(findings.filter((finding) => finding.revision === 's04')).toEqual([]);
  });

  it('drop and rename outside a rebuild keep their own rules; tables created in the run are exempt', () => {
    expect(hits(findings, 'rename-table')).toEqual(['s05 ALTER TABLE audit RENAME TO audit_log']);
    expect(hits(findings, 'drop-table')).toEqual(['s06 DROP TABLE audit_log']); // not: DROP TABLE drafts
    expect(hits(findings, 'drop-column')).toEqual(['s06 ALTER TABLE notes DROP COLUMN author']);
    expect(hits(findings, 'not-null-without-default')).toEqual(['s05 ALTER TABLE notes ADD COLUMN pinned BOOLEAN NOT NULL']);
  });

  it('has no lock timeout, CONCURRENTLY or transaction rules', () => {
    const rules = new Set(findings.map((finding) => finding.rule));
    for (const rule of ['lock-timeout', 'index-not-concurrent', 'data-in-ddl-transaction']) expect(rules.has(rule)).toBe(false);
  });

  it('honours the allowance of the rebuild in s07', () => {
    expect(findings.find((finding) => finding.revision === 's07')).toMatchObject({
      rule: 'table-rebuild',
      allowed: true,
      allowReason: 'notes has 40 rows; the copy takes milliseconds',
      line: 27,
    });
  });
});

describe('MySQL', () => {
  let findings: Finding[];
  beforeAll(async () => {
    findings = await lintSnapshot('mysql-m01-head', 'mysql', 'mysql', 5);
  });

  it('lock-timeout: the action cannot enforce it, the revision that sets lock_wait_timeout passes', () => {
    expect(findings.filter((finding) => finding.rule === 'lock-timeout').map((finding) => [finding.revision, finding.severity])).toEqual([
      ['m02', 'error'],
    ]);
    expect(findings.find((finding) => finding.rule === 'lock-timeout')?.safeAlternative).toContain('lock_wait_timeout');
  });

  it('reads MODIFY as a type change and CHANGE old new as a rename', () => {
    expect(hits(findings, 'alter-column-type')).toEqual(['m02 ALTER TABLE invoices MODIFY amount BIGINT NULL']);
    expect(hits(findings, 'rename-column')).toEqual(['m02 ALTER TABLE customers CHANGE zip postcode VARCHAR(10) NULL']);
  });

  it('flags the compatibility rules and NOT NULL without default, not the new table', () => {
    expect(hits(findings, 'not-null-without-default')).toEqual(['m02 ALTER TABLE customers ADD COLUMN country VARCHAR(2) NOT NULL']);
    expect(hits(findings, 'drop-column')).toEqual(['m02 ALTER TABLE customers DROP COLUMN fax']);
    expect(hits(findings, 'rename-table')).toEqual(['m02 ALTER TABLE invoices RENAME TO bills']);
    expect(hits(findings, 'drop-table')).toEqual(['m02 DROP TABLE tmp_import']);
    expect(hits(findings, 'truncate')).toEqual(['m02 TRUNCATE TABLE bills']);
  });

  it('has no PostgreSQL-only rules: CREATE INDEX is online on InnoDB', () => {
    expect(findings.map((finding) => finding.statement).join('\n')).not.toContain('CREATE INDEX');
  });

  it('ALGORITHM=INSTANT or LOCK=NONE statements do not block, and are not flagged as blocking', async () => {
    const sql = [
      '-- Running upgrade m03 -> m04',
      'SET SESSION lock_wait_timeout = 5;',
      'ALTER TABLE `bills` MODIFY `amount` BIGINT NOT NULL, ALGORITHM=INPLACE, LOCK=NONE;',
      'ALTER TABLE bills ADD COLUMN flag INT DEFAULT (RAND()) NULL;',
    ].join('\n');
    const result = await lintMigrations({ dialect: 'mysql', script: splitOfflineSql(sql), files: {}, lockTimeoutSeconds: 0 });
    expect(result.map((finding) => finding.rule)).toEqual(['volatile-default']);
  });
});

describe('the token-level parser', () => {
  it('reads the statement shapes Alembic and people write', async () => {
    const statements = await parseStatements(
      [
        'CREATE UNIQUE INDEX IF NOT EXISTS ix ON "Users" (email)',
        'DROP TABLE IF EXISTS a, `b`',
        'RENAME TABLE a TO b, c TO d',
        'LOCK TABLES a READ, b WRITE',
        'INSERT OR REPLACE INTO t (a) VALUES (1)',
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id), DROP FOREIGN KEY old_fk",
        'SET @@session.lock_wait_timeout = DEFAULT',
        'START TRANSACTION',
      ].join(';\n'),
      'mysql',
    );
    expect(statements.map((statement) => statement.operations)).toEqual([
      [{ kind: 'create-index', table: 'Users', name: 'ix', concurrent: false, unique: true }],
      [{ kind: 'drop-table', table: 'a' }, { kind: 'drop-table', table: 'b' }],
      [{ kind: 'rename-table', table: 'a', newName: 'b' }, { kind: 'rename-table', table: 'c', newName: 'd' }],
      [{ kind: 'lock-table', table: 'b' }],
      [{ kind: 'data-change', verb: 'INSERT', table: 't' }],
      [
        {
          kind: 'add-constraint',
          table: 't',
          name: 'fk',
          type: 'foreign-key',
          validated: true,
          usingIndex: false,
          notNullColumn: null,
          referencedTable: 'u',
        },
        { kind: 'alter-table-other', table: 't', online: false },
      ],
      [{ kind: 'set-lock-timeout', value: 'reset', local: false, milliseconds: null }],
      [{ kind: 'begin' }],
    ]);
  });
});
