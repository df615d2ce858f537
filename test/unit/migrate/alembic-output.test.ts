import { describe, expect, it } from 'vitest';

import { detectDialect, isLockTimeout, outputTail, parseRevisionLines } from '../../../src/migrate/alembic-output.js';
import { snapshot } from './fixtures.js';

describe('parseRevisionLines', () => {
  it('reads several heads from real `alembic heads` output', () => {
    expect(parseRevisionLines(snapshot('multihead-heads.txt'))).toEqual(['ca12c7581790', '7c8ababd80b7']);
    expect(parseRevisionLines(snapshot('postgresql-heads.txt'))).toEqual(['p15']);
  });

  it('reads real `alembic current` output: empty, a revision, the head', () => {
    expect(parseRevisionLines(snapshot('sqlite-current-empty.txt'))).toEqual([]);
    expect(parseRevisionLines(snapshot('sqlite-current-s03.txt'))).toEqual(['s03']);
    expect(parseRevisionLines(snapshot('sqlite-current-head.txt'))).toEqual(['s07']);
  });

  it('accepts branch labels and skips log lines', () => {
    const stdout = 'INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\nabc123 (billing) (head)\ndef456 (mergepoint)\n';
    expect(parseRevisionLines(stdout)).toEqual(['abc123', 'def456']);
  });
});

describe('detectDialect', () => {
  it("uses Alembic's Context impl log line", () => {
    expect(detectDialect(snapshot('postgresql-p01-head.stderr.txt'), '')).toBe('postgresql');
    expect(detectDialect(snapshot('sqlite-current.stderr.txt'), '')).toBe('sqlite');
    expect(detectDialect(snapshot('mysql-m01-head.stderr.txt'), '')).toBe('mysql');
    expect(detectDialect('INFO  [alembic.runtime.migration] Context impl MSSQLImpl.', '')).toBe('other');
  });

  it('falls back to the SQL when logging is not configured', () => {
    expect(detectDialect('', snapshot('sqlite-s01-head.sql'))).toBe('sqlite');
    expect(detectDialect('', snapshot('mysql-m01-head.sql'))).toBe('mysql');
    expect(detectDialect('', snapshot('postgresql-p01-head.sql'))).toBe('postgresql');
    expect(detectDialect('', 'ALTER TABLE t ADD COLUMN a INTEGER;')).toBe('other');
  });
});

describe('isLockTimeout and outputTail', () => {
  it('recognises lock timeouts as psycopg2 and MySQL report them', () => {
    expect(isLockTimeout('psycopg2.errors.LockNotAvailable: canceling statement due to lock timeout')).toBe(true);
    expect(isLockTimeout('(1205, Lock wait timeout exceeded; try restarting transaction)')).toBe(true);
    expect(isLockTimeout('psycopg2.errors.UndefinedColumn: column "x" does not exist')).toBe(false);
  });

  it('keeps the last lines', () => {
    expect(outputTail('a\nb\nc\n', 2)).toBe('b\nc');
  });
});
