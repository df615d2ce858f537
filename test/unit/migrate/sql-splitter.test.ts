import { describe, expect, it } from 'vitest';

import { splitSqlStatements } from '../../../src/migrate/lint/sql-splitter.js';

const texts = (sql: string, mysql = false): string[] => splitSqlStatements(sql, { mysql }).map((statement) => statement.text);

describe('splitSqlStatements', () => {
  it('splits at top-level semicolons and drops blank statements and leading comments', () => {
    expect(texts('-- Running upgrade a -> b\n\nBEGIN;\n\nALTER TABLE t ADD COLUMN a int;\n;\nCOMMIT;\n')).toEqual([
      'BEGIN',
      'ALTER TABLE t ADD COLUMN a int',
      'COMMIT',
    ]);
  });

  it('does not split inside strings, quoted names, comments or dollar quotes', () => {
    const sql = [
      "UPDATE t SET note = 'a; b''c;' WHERE \"we;ird\" = 1",
      '/* block; comment */ SELECT 1',
      'DO $body$ BEGIN PERFORM 1; END $body$',
      'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql',
      'SELECT a$b FROM t',
    ].join(';\n');
    expect(texts(sql)).toEqual([
      "UPDATE t SET note = 'a; b''c;' WHERE \"we;ird\" = 1",
      '/* block; comment */ SELECT 1',
      'DO $body$ BEGIN PERFORM 1; END $body$',
      'CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql',
      'SELECT a$b FROM t',
    ]);
  });

  it('MySQL: backslash escapes, backticks and # comments', () => {
    expect(texts("INSERT INTO `a;b` VALUES ('it\\'s; fine'); # done; really\nSELECT 2", true)).toEqual([
      "INSERT INTO `a;b` VALUES ('it\\'s; fine')",
      '# done; really\nSELECT 2',
    ]);
  });
});
