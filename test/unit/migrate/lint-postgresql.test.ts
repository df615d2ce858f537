/**
 * Every PostgreSQL rule, positive and negative, on the real offline SQL of the fixture
 * project test/fixtures/migrations/postgresql (each revision's comments say which is which).
 */
import { beforeAll, describe, expect, it } from 'vitest';

import type { Finding } from '../../../src/migrate/lint/index.js';
import { hits, lintSnapshot } from './lint-helpers.js';

let findings: Finding[];
let perMigration: Finding[];
let fromEmpty: Finding[];

beforeAll(async () => {
  findings = await lintSnapshot('postgresql-p01-head', 'postgresql', 'postgresql');
  perMigration = await lintSnapshot('postgresql-per-migration-p01-head', 'postgresql', 'postgresql');
  fromEmpty = await lintSnapshot('postgresql-base-head', 'postgresql', 'postgresql');
});

describe('lock-timeout', () => {
  it('without the action timeout: an error once per revision that locks a live table', () => {
    expect(hits(findings, 'lock-timeout')).toEqual([
      'p02 ALTER TABLE users ADD COLUMN nickname VARCHAR(50)',
      'p03 CREATE INDEX ix_users_email ON users (email)',
      'p04 ALTER TABLE users ALTER COLUMN name SET NOT NULL',
      'p05 ALTER TABLE orders ADD CONSTRAINT fk_orders_user FOREIGN KEY(user_id) REFERENCES users (id)',
      'p06 ALTER TABLE sessions ADD CONSTRAINT uq_sessions_token UNIQUE (token)',
      'p07 ALTER TABLE orders ALTER COLUMN total TYPE BIGINT',
      'p08 ALTER TABLE users DROP COLUMN legacy_flag',
      'p09 ALTER TABLE users RENAME nickname_old TO handle',
      'p10 VACUUM FULL orders',
      'p11 ALTER TABLE orders ADD COLUMN currency VARCHAR(3)',
      // p12 only deletes rows; p13 sets its own lock_timeout
      'p14 ALTER TABLE orders ADD COLUMN memo TEXT',
      'p15 ALTER TABLE users DROP COLUMN handle',
    ]);
    expect(findings.filter((finding) => finding.rule === 'lock-timeout').every((finding) => finding.severity === 'error')).toBe(true);
  });

  it("with the action's timeout: info, except after the SQL set lock_timeout = 0", async () => {
    const enforced = await lintSnapshot('postgresql-p01-head', 'postgresql', 'postgresql', 5);
    const lockFindings = enforced.filter((finding) => finding.rule === 'lock-timeout');
    expect(lockFindings.filter((finding) => finding.severity === 'error').map((finding) => finding.revision)).toEqual(['p14', 'p15']);
    expect(lockFindings.filter((finding) => finding.severity === 'info')).toHaveLength(10);
    expect(lockFindings.find((finding) => finding.revision === 'p02')?.message).toContain("the action's lock_timeout (5s");
    expect(lockFindings.find((finding) => finding.revision === 'p14')?.message).toContain('set lock_timeout to 0');
    expect(lockFindings.map((finding) => finding.revision)).not.toContain('p13');
  });

  it('SET LOCAL lasts until its COMMIT: with a transaction per migration p14 is on its own again', async () => {
    const enforced = await lintSnapshot('postgresql-per-migration-p01-head', 'postgresql', 'postgresql', 5);
    const p14 = enforced.find((finding) => finding.rule === 'lock-timeout' && finding.revision === 'p14');
    expect(p14?.severity).toBe('error');
    expect(hits(perMigration, 'lock-timeout')).not.toContain('p13 ALTER TABLE orders ADD COLUMN note TEXT');
  });
});

describe('index-not-concurrent', () => {
  it('flags CREATE INDEX and DROP INDEX without CONCURRENTLY on live tables', () => {
    expect(hits(findings, 'index-not-concurrent')).toEqual([
      'p03 CREATE INDEX ix_users_email ON users (email)',
      'p03 DROP INDEX ix_orders_user_id',
    ]);
  });

  it('does not flag concurrent builds, nor indexes of tables created in the run', () => {
    const flagged = hits(findings, 'index-not-concurrent').join('\n');
    expect(flagged).not.toContain('ix_orders_status');
    expect(flagged).not.toContain('ix_coupons_batch'); // p07 creates coupons
    expect(hits(fromEmpty, 'index-not-concurrent')).toEqual([]); // every table is new from an empty database
  });
});

describe('concurrently-in-transaction', () => {
  it('flags CONCURRENTLY in the migration transaction, also on new tables', () => {
    expect(hits(findings, 'concurrently-in-transaction')).toEqual([
      'p03 CREATE INDEX CONCURRENTLY ix_orders_reference ON orders (reference)',
    ]);
    expect(hits(fromEmpty, 'concurrently-in-transaction')).toEqual([
      'p03 CREATE INDEX CONCURRENTLY ix_orders_reference ON orders (reference)',
    ]);
  });

  it('accepts CONCURRENTLY and VACUUM inside autocommit_block', () => {
    const flagged = hits(findings, 'concurrently-in-transaction').join('\n');
    for (const name of ['ix_orders_status', 'ix_orders_status_old', 'uq_orders_reference_idx', 'REINDEX', 'VACUUM']) {
      expect(flagged).not.toContain(name);
    }
  });
});

describe('column rules', () => {
  it('not-null-without-default: NOT NULL with neither default nor a new table', () => {
    expect(hits(findings, 'not-null-without-default')).toEqual(['p02 ALTER TABLE users ADD COLUMN tier INTEGER NOT NULL']);
    // not: `state ... DEFAULT 'active' NOT NULL`, `created_at ... DEFAULT now() NOT NULL`, coupons.batch (new table)
  });

  it('volatile-default: volatile defaults, identity and serial are errors, unknown functions warnings', () => {
    const volatile = findings.filter((finding) => finding.rule === 'volatile-default');
    expect(volatile.map((finding) => [finding.severity, finding.statement])).toEqual([
      ['error', 'ALTER TABLE orders ADD COLUMN token UUID DEFAULT gen_random_uuid()'],
      ['error', 'ALTER TABLE events ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY'],
      ['error', 'ALTER TABLE sessions ADD COLUMN position bigserial'],
      ['warning', 'ALTER TABLE orders ADD COLUMN shard INTEGER DEFAULT pick_shard()'],
    ]);
    expect(hits(findings, 'volatile-default').join('\n')).not.toContain('now()');
  });
});

describe('set-not-null', () => {
  it('flags SET NOT NULL, but not after a validated CHECK (col IS NOT NULL) proved it', () => {
    expect(hits(findings, 'set-not-null')).toEqual(['p04 ALTER TABLE users ALTER COLUMN name SET NOT NULL']);
  });
});

describe('constraint-not-valid', () => {
  it('flags FOREIGN KEY and CHECK added with validation; NOT VALID and VALIDATE pass', () => {
    expect(hits(findings, 'constraint-not-valid')).toEqual([
      'p05 ALTER TABLE orders ADD CONSTRAINT fk_orders_user FOREIGN KEY(user_id) REFERENCES users (id)',
      'p05 ALTER TABLE orders ADD CONSTRAINT ck_orders_total_positive CHECK (total > 0)',
    ]);
    expect(findings.find((finding) => finding.rule === 'constraint-not-valid')?.message).toContain('orders and users');
  });
});

describe('unique-without-index', () => {
  it('flags UNIQUE and PRIMARY KEY that build their index; USING INDEX passes', () => {
    expect(hits(findings, 'unique-without-index')).toEqual([
      'p06 ALTER TABLE sessions ADD CONSTRAINT uq_sessions_token UNIQUE (token)',
      'p06 ALTER TABLE payments ADD CONSTRAINT pk_payments PRIMARY KEY (order_id)',
    ]);
  });
});

describe('alter-column-type', () => {
  it('flags a type change on a live table, not on a table created in the run', () => {
    expect(hits(findings, 'alter-column-type')).toEqual(['p07 ALTER TABLE orders ALTER COLUMN total TYPE BIGINT']);
  });
});

describe('compatibility rules', () => {
  it('drop-column and drop-table, not for a table created and dropped in the run', () => {
    expect(hits(findings, 'drop-column')).toEqual([
      'p08 ALTER TABLE users DROP COLUMN legacy_flag',
      'p15 ALTER TABLE users DROP COLUMN handle',
      'p15 ALTER TABLE orders DROP COLUMN shard',
    ]);
    expect(hits(findings, 'drop-table')).toEqual(['p08 DROP TABLE events']); // not: DROP TABLE scratch
  });

  it('rename-column and rename-table, not for a table created in the run', () => {
    expect(hits(findings, 'rename-column')).toEqual(['p09 ALTER TABLE users RENAME nickname_old TO handle']);
    expect(hits(findings, 'rename-table')).toEqual(['p09 ALTER TABLE payments RENAME TO order_payments']);
  });
});

describe('maintenance statements', () => {
  it('VACUUM FULL, CLUSTER, REINDEX, TRUNCATE and LOCK each have their rule', () => {
    expect(hits(findings, 'vacuum-full')).toEqual(['p10 VACUUM FULL orders']);
    expect(hits(findings, 'cluster')).toEqual(['p10 CLUSTER orders USING orders_pkey']);
    expect(hits(findings, 'reindex-not-concurrent')).toEqual(['p10 REINDEX INDEX ix_users_email']);
    expect(hits(findings, 'truncate')).toEqual(['p10 TRUNCATE sessions']);
    expect(hits(findings, 'lock-table')).toEqual(['p10 LOCK TABLE users IN ACCESS EXCLUSIVE MODE']);
  });

  it('plain VACUUM, ANALYZE and REINDEX CONCURRENTLY pass, and new tables are exempt', () => {
    const all = findings.map((finding) => finding.statement).join('\n');
    expect(all).not.toContain('VACUUM (ANALYZE) orders');
    expect(all).not.toContain('ANALYZE users');
    expect(all).not.toContain('REINDEX TABLE CONCURRENTLY');
    for (const rule of ['vacuum-full', 'cluster', 'reindex-not-concurrent', 'truncate', 'lock-table']) {
      expect(hits(fromEmpty, rule)).toEqual([]);
    }
  });
});

describe('data-in-ddl-transaction', () => {
  it('one transaction for the whole run: a data change shares it with earlier revisions', () => {
    expect(hits(findings, 'data-in-ddl-transaction')).toEqual([
      "p11 UPDATE orders SET currency = 'EUR' WHERE currency IS NULL",
      "p12 DELETE FROM sessions WHERE token = ''",
    ]);
    expect(findings.find((finding) => finding.rule === 'data-in-ddl-transaction')?.severity).toBe('warning');
  });

  it('a transaction per migration: only the revision that mixes them', () => {
    const mixed = perMigration.filter((finding) => finding.rule === 'data-in-ddl-transaction');
    expect(mixed.map((finding) => finding.revision)).toEqual(['p11']);
    expect(mixed[0]?.message).toContain('ALTER TABLE orders ADD COLUMN currency VARCHAR(3) (revision p11)');
  });

  it("seeding a new table and Alembic's version bookkeeping are not data changes", () => {
    const statements = [...findings, ...fromEmpty].filter((finding) => finding.rule === 'data-in-ddl-transaction');
    expect(statements.map((finding) => finding.statement).join('\n')).not.toMatch(/currencies|alembic_version/);
    expect(hits(fromEmpty, 'data-in-ddl-transaction')).toEqual([]);
  });
});

describe('findings carry where they come from', () => {
  it('names the revision file and the line of def upgrade', () => {
    const finding = findings.find((item) => item.rule === 'set-not-null');
    expect(finding).toMatchObject({
      revision: 'p04',
      file: 'migrations/versions/p04_not_null.py',
      line: 19,
      allowed: false,
    });
    expect(finding?.safeAlternative).toContain('NOT VALID');
  });

  it('from an empty database only what fails regardless of table age is reported', () => {
    expect(fromEmpty.filter((finding) => finding.severity === 'error').map((finding) => finding.rule)).toEqual([
      'concurrently-in-transaction',
    ]);
  });
});
