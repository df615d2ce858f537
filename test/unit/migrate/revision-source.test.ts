import { describe, expect, it } from 'vitest';

import { parseStatements } from '../../../src/migrate/lint/index.js';
import { existingType, readRevisionHints, sqlalchemyType } from '../../../src/migrate/lint/revision-source.js';

describe('readRevisionHints', () => {
  it('reads existing_type of op.alter_column and batch_op.alter_column, and drop_index tables', () => {
    const hints = readRevisionHints(`
def upgrade():
    op.alter_column("users", "bio", existing_type=sa.VARCHAR(length=200), type_=sa.Text())
    op.alter_column(table_name='orders', column_name='note', existing_type=postgresql.VARCHAR(50))
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.alter_column('token', existing_type=sa.String(64), type_=sa.String(128))
        batch_op.drop_index('ix_sessions_token')
    op.drop_index(op.f('ix_reports_user_id'), table_name='reports')
    op.drop_index('ix_old', 'old_table')
    op.alter_column('users', 'age', type_=sa.BigInteger)  # no existing_type: nothing known
`);
    expect(existingType(hints, 'users', 'bio')).toEqual({ name: 'varchar', length: 200 });
    expect(existingType(hints, 'orders', 'note')).toEqual({ name: 'varchar', length: 50 });
    expect(existingType(hints, 'sessions', 'token')).toEqual({ name: 'varchar', length: 64 });
    expect(existingType(hints, 'users', 'age')).toBeNull();
    expect(Object.fromEntries(hints.indexTables)).toEqual({
      ix_sessions_token: 'sessions',
      ix_reports_user_id: 'reports',
      ix_old: 'old_table',
    });
  });

  it('maps SQLAlchemy types to PostgreSQL type names', () => {
    expect(sqlalchemyType('sa.Text()')).toEqual({ name: 'text', length: null });
    expect(sqlalchemyType('sa.String()')).toEqual({ name: 'varchar', length: null });
    expect(sqlalchemyType('sa.Unicode(length=80)')).toEqual({ name: 'varchar', length: 80 });
    expect(sqlalchemyType('sa.INTEGER()')).toEqual({ name: 'int4', length: null });
    expect(sqlalchemyType('postgresql.JSONB(astext_type=sa.Text())')).toEqual({ name: 'jsonb', length: null });
  });
});

describe('what the parsers read for the new rules', () => {
  it('PostgreSQL lock_timeout values in milliseconds, WHERE-less data changes, the new type and USING', async () => {
    const statements = await parseStatements(
      [
        "SET lock_timeout = '120s'",
        "SET LOCAL lock_timeout TO '2min'",
        'SET lock_timeout = 4000',
        'UPDATE t SET a = 1',
        'DELETE FROM t WHERE id IN (SELECT id FROM u)',
        'ALTER TABLE t ALTER COLUMN c TYPE VARCHAR(80) USING c::varchar',
      ].join(';\n'),
      'postgresql',
    );
    expect(statements.map((statement) => statement.operations[0])).toEqual([
      { kind: 'set-lock-timeout', value: 'limited', local: false, milliseconds: 120_000 },
      { kind: 'set-lock-timeout', value: 'limited', local: true, milliseconds: 120_000 },
      { kind: 'set-lock-timeout', value: 'limited', local: false, milliseconds: 4000 },
      { kind: 'data-change', verb: 'UPDATE', table: 't', allRows: true },
      { kind: 'data-change', verb: 'DELETE', table: 't' },
      { kind: 'alter-column-type', table: 't', column: 'c', online: false, newType: { name: 'varchar', length: 80 }, using: true },
    ]);
  });

  it('MySQL lock_wait_timeout in seconds and WHERE outside a subquery', async () => {
    const statements = await parseStatements(
      ['SET SESSION lock_wait_timeout = 120', 'UPDATE t SET a = (SELECT b FROM u WHERE u.id = 1)', 'DELETE FROM t WHERE a = 1'].join(';\n'),
      'mysql',
    );
    expect(statements.map((statement) => statement.operations[0])).toEqual([
      { kind: 'set-lock-timeout', value: 'limited', local: false, milliseconds: 120_000 },
      { kind: 'data-change', verb: 'UPDATE', table: 't', allRows: true },
      { kind: 'data-change', verb: 'DELETE', table: 't', allRows: false },
    ]);
  });
});
