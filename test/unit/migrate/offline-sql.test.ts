import { describe, expect, it } from 'vitest';

import { splitOfflineSql } from '../../../src/migrate/offline-sql.js';
import { snapshot } from './fixtures.js';

describe('splitOfflineSql on real alembic --sql output', () => {
  it('gives one chunk per revision with its down revision, in run order', () => {
    const script = splitOfflineSql(snapshot('postgresql-p01-head.sql'));
    expect(script.revisions.map((chunk) => chunk.revision)).toEqual(
      Array.from({ length: 14 }, (_, index) => `p${String(index + 2).padStart(2, '0')}`),
    );
    expect(script.revisions[0]?.downRevisions).toEqual(['p01']);
    expect(script.revisions[0]?.sql).toMatch(/^BEGIN;\s+ALTER TABLE users ADD COLUMN nickname/);
    expect(script.revisions[1]?.sql).toContain('CREATE INDEX ix_users_email ON users (email);');
    expect(script.revisions[1]?.sql).not.toContain('ALTER TABLE users ADD COLUMN nickname');
    expect(script.revisions.at(-1)?.sql).toMatch(/UPDATE alembic_version SET version_num='p15'.*;\s+COMMIT;$/s);
  });

  it('moves the BEGIN written before the next header into that revision (transaction_per_migration)', () => {
    const script = splitOfflineSql(snapshot('postgresql-per-migration-p01-head.sql'));
    expect(script.preamble).toBe('');
    for (const chunk of script.revisions) expect(chunk.sql).toMatch(/^BEGIN;/);
    for (const chunk of script.revisions) expect(chunk.sql).toMatch(/COMMIT;$/);
  });

  it('keeps the autocommit block COMMIT / BEGIN inside its revision', () => {
    const script = splitOfflineSql(snapshot('postgresql-p01-head.sql'));
    const p10 = script.revisions.find((chunk) => chunk.revision === 'p10')?.sql ?? '';
    expect(p10).toMatch(/^COMMIT;\s+VACUUM FULL orders;[\s\S]*REINDEX TABLE CONCURRENTLY orders;\s+BEGIN;\s+CLUSTER/);
  });

  it('from an empty database: the preamble creates alembic_version and the first down list is empty', () => {
    const script = splitOfflineSql(snapshot('postgresql-base-head.sql'));
    expect(script.preamble).toMatch(/^BEGIN;\s+CREATE TABLE alembic_version/);
    expect(script.revisions[0]).toMatchObject({ revision: 'p01', downRevisions: [] });
    expect(script.revisions[0]?.sql).toMatch(/^CREATE TABLE users/);
  });

  it('reads a merge revision with two down revisions', () => {
    const script = splitOfflineSql(snapshot('multihead-merged-base-head.sql'));
    expect(script.revisions.map((chunk) => [chunk.revision, chunk.downRevisions])).toEqual([
      ['bee8e199b507', []],
      ['7c8ababd80b7', ['bee8e199b507']],
      ['ca12c7581790', ['bee8e199b507']],
      ['e0adc599fbeb', ['ca12c7581790', '7c8ababd80b7']],
    ]);
  });

  it('SQLite and MySQL output has no transaction statements to move', () => {
    for (const name of ['sqlite-s01-head.sql', 'mysql-m01-head.sql']) {
      const script = splitOfflineSql(snapshot(name));
      expect(script.preamble).toBe('');
      expect(script.revisions.length).toBeGreaterThan(1);
      for (const chunk of script.revisions) expect(chunk.sql).not.toMatch(/^(BEGIN|COMMIT);/m);
    }
  });

  it('returns no revisions for output without a header (nothing pending)', () => {
    expect(splitOfflineSql('')).toEqual({ preamble: '', revisions: [] });
    expect(splitOfflineSql('BEGIN;\n\nCOMMIT;\n')).toEqual({ preamble: 'BEGIN;\n\nCOMMIT;', revisions: [] });
  });
});
