/**
 * Rules about locks: statements that make application queries wait (PostgreSQL's ACCESS
 * EXCLUSIVE and SHARE locks, MySQL's table copies, SQLite's write lock) for longer than a
 * moment. Tables created earlier in the same run are exempt: nothing else uses them yet.
 */
import type { ColumnType } from '../operations.js';
import { existingType } from '../revision-source.js';
import type { Rule } from './rule.js';
import { ALL_DIALECTS } from './rule.js';

const AUTOCOMMIT_BLOCK = '`with op.get_context().autocommit_block():`';

export const indexNotConcurrent: Rule = {
  id: 'index-not-concurrent',
  severity: 'error',
  title: 'CREATE INDEX / DROP INDEX without CONCURRENTLY',
  dialects: ['postgresql'],
  safeAlternative: {
    default:
      `Build it with \`op.create_index(..., postgresql_concurrently=True)\` and drop it with ` +
      `\`op.drop_index(..., postgresql_concurrently=True)\`, both inside ${AUTOCOMMIT_BLOCK} ` +
      '(CONCURRENTLY cannot run in a transaction).',
  },
  check(operation, { state }) {
    if (operation.kind === 'create-index' && !operation.concurrent && state.isLive(operation.table)) {
      return {
        message:
          `CREATE INDEX${operation.name ? ` ${operation.name}` : ''} on ${operation.table} without CONCURRENTLY ` +
          `takes a SHARE lock: writes to ${operation.table} wait until the whole index is built.`,
      };
    }
    if (operation.kind === 'drop-index' && !operation.concurrent) {
      const table = operation.table ?? state.tableOfIndex(operation.name);
      if (!state.isLive(table)) return null;
      // The lock is brief (nothing is scanned or built), so only a wait behind a long
      // transaction hurts, and the lock timeout bounds that: a warning, not an error.
      return {
        severity: 'warning',
        message:
          `DROP INDEX ${operation.name} without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on ` +
          `${table ?? 'its table'}: brief (no scan), but queries on it queue while it waits behind a long transaction.`,
      };
    }
    return null;
  },
};

export const concurrentlyInTransaction: Rule = {
  id: 'concurrently-in-transaction',
  severity: 'error',
  title: 'CONCURRENTLY (or VACUUM) inside a transaction block',
  dialects: ['postgresql'],
  safeAlternative: {
    default: `Run the statement inside ${AUTOCOMMIT_BLOCK}: Alembic commits the migration's transaction first and runs it on its own.`,
  },
  check(operation, { state }) {
    if (!state.inTransaction) return null;
    const concurrent: Partial<Record<string, string>> = {
      'create-index': 'CREATE INDEX CONCURRENTLY',
      'drop-index': 'DROP INDEX CONCURRENTLY',
      reindex: 'REINDEX CONCURRENTLY',
    };
    const what = 'concurrent' in operation && operation.concurrent ? concurrent[operation.kind] : undefined;
    if (what) return { message: `${what} cannot run inside a transaction block: PostgreSQL refuses it and the migration fails.` };
    if (operation.kind === 'vacuum') return { message: 'VACUUM cannot run inside a transaction block: PostgreSQL refuses it and the migration fails.' };
    return null;
  },
};

export const setNotNull: Rule = {
  id: 'set-not-null',
  severity: 'error',
  title: 'ALTER COLUMN ... SET NOT NULL on an existing table',
  dialects: ['postgresql'],
  safeAlternative: {
    default:
      'Add `CHECK (col IS NOT NULL) NOT VALID`, then `VALIDATE CONSTRAINT` (reads and writes continue), then ' +
      'SET NOT NULL (PostgreSQL 12+ sees the valid check and skips the scan), then drop the check.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'set-not-null' || !state.isLive(operation.table)) return null;
    if (state.isProvenNotNull(operation.table, operation.column)) return null;
    return {
      message:
        `SET NOT NULL on ${operation.table}.${operation.column} scans the whole table under an ACCESS EXCLUSIVE ` +
        `lock: every query on ${operation.table} waits for the scan.`,
    };
  },
};

export const constraintNotValid: Rule = {
  id: 'constraint-not-valid',
  severity: 'error',
  title: 'FOREIGN KEY or CHECK added without NOT VALID',
  dialects: ['postgresql'],
  safeAlternative: {
    default:
      "Add it with NOT VALID (`op.execute('ALTER TABLE t ADD CONSTRAINT c ... NOT VALID')`: Alembic 1.8 has no " +
      'option for it), then `ALTER TABLE t VALIDATE CONSTRAINT c` in a later statement or revision: validation ' +
      'takes a lock that lets reads and writes continue.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'add-constraint' || !operation.validated || !state.isLive(operation.table)) return null;
    if (operation.type !== 'foreign-key' && operation.type !== 'check') return null;
    const what = operation.type === 'foreign-key' ? 'FOREIGN KEY' : 'CHECK';
    const tables = [operation.table, operation.referencedTable].filter((table) => table !== null).join(' and ');
    return {
      message:
        `Adding ${what}${operation.name ? ` ${operation.name}` : ''} to ${operation.table} checks every existing ` +
        `row while holding a lock that blocks writes to ${tables}.`,
    };
  },
};

export const uniqueWithoutIndex: Rule = {
  id: 'unique-without-index',
  severity: 'error',
  title: 'UNIQUE / PRIMARY KEY constraint that builds its own index',
  dialects: ['postgresql'],
  safeAlternative: {
    default:
      `\`CREATE UNIQUE INDEX CONCURRENTLY ix ON t (...)\` inside ${AUTOCOMMIT_BLOCK}, then ` +
      '`ALTER TABLE t ADD CONSTRAINT c UNIQUE USING INDEX ix` (or `PRIMARY KEY USING INDEX ix`), which is instant.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'add-constraint' || operation.usingIndex || !state.isLive(operation.table)) return null;
    const names: Partial<Record<string, string>> = { unique: 'UNIQUE', 'primary-key': 'PRIMARY KEY', exclusion: 'EXCLUDE' };
    const what = names[operation.type];
    if (!what) return null;
    return {
      message:
        `ADD CONSTRAINT${operation.name ? ` ${operation.name}` : ''} ${what} on ${operation.table} builds its index ` +
        `under an ACCESS EXCLUSIVE lock: every query on ${operation.table} waits for the build.`,
    };
  },
};

export const alterColumnType: Rule = {
  id: 'alter-column-type',
  severity: 'error',
  title: 'ALTER COLUMN ... TYPE that rewrites the table (MySQL: MODIFY / CHANGE)',
  dialects: ['postgresql', 'mysql'],
  safeAlternative: {
    default:
      'Expand and contract: add a column of the new type, backfill it in batches, move the code to it, drop the old ' +
      'column in a later release. Widening varchar/text needs no rewrite and is reported as info; if the lint could ' +
      'not tell the old type, pass `existing_type=` to `op.alter_column`.',
    mysql:
      'Append `ALGORITHM=INPLACE, LOCK=NONE` so MySQL refuses instead of blocking, use an online schema change tool ' +
      '(gh-ost, pt-online-schema-change), or expand and contract with a new column.',
  },
  check(operation, { state, hints }) {
    if (operation.kind !== 'alter-column-type' || operation.online || !state.isLive(operation.table)) return null;
    const column = `${operation.table}.${operation.column}`;
    if (state.dialect === 'mysql') {
      return {
        message:
          `MODIFY/CHANGE of ${column} redefines the column: most such changes copy the whole table ` +
          '(ALGORITHM=COPY) and writes wait for the copy.',
      };
    }
    const before = state.columnType(operation.table, operation.column) ?? existingType(hints, operation.table, operation.column);
    const after = operation.newType ? typeText(operation.newType) : 'the new type';
    const rewrite =
      `rewrites ${operation.table} and rebuilds its indexes under an ACCESS EXCLUSIVE lock: every query on ` +
      `${operation.table} waits for the rewrite`;
    switch (typeChange(before, operation.newType, operation.using === true)) {
      case 'metadata-only':
        return {
          severity: 'info',
          message: `Changing ${column} from ${typeText(before)} to ${after} without USING is metadata-only on PostgreSQL: no rewrite, no scan.`,
        };
      case 'unknown-before':
        return {
          severity: 'warning',
          message:
            `Changing ${column} to ${after}: neither the revision (existing_type=) nor an earlier statement says what ` +
            `type it had. From varchar or text this is metadata-only; from any other type it ${rewrite}.`,
        };
      case 'rewrite':
        return {
          message:
            `Changing ${column}${before ? ` from ${typeText(before)}` : ''} to ${after}` +
            `${operation.using ? ' with USING' : ''} ${rewrite}.`,
        };
    }
  },
};

/**
 * PostgreSQL skips the rewrite when the old type is binary-coercible to the new one and no
 * USING expression recomputes the values: varchar(n) or text to text or to an unbounded
 * varchar, and varchar(n) to varchar(m) with m >= n.
 */
function typeChange(before: ColumnType | null, after: ColumnType | undefined, using: boolean): 'metadata-only' | 'rewrite' | 'unknown-before' {
  if (using || after === undefined) return 'rewrite';
  const unbounded = after.name === 'text' || (after.name === 'varchar' && after.length === null);
  if (!unbounded && after.name !== 'varchar') return 'rewrite';
  if (before === null) return 'unknown-before';
  if (unbounded) return before.name === 'varchar' || before.name === 'text' ? 'metadata-only' : 'rewrite';
  const longer = before.name === 'varchar' && before.length !== null && after.length !== null && after.length >= before.length;
  return longer ? 'metadata-only' : 'rewrite';
}

function typeText(type: ColumnType | null): string {
  if (type === null) return 'its old type';
  return type.length === null ? type.name : `${type.name}(${type.length})`;
}

export const tableRebuild: Rule = {
  id: 'table-rebuild',
  severity: 'error',
  title: 'Batch-mode table rebuild (copy and swap)',
  dialects: ALL_DIALECTS,
  safeAlternative: {
    default:
      'Use plain operations that need no copy where the database has them (SQLite 3.35+: `op.add_column`, ' +
      "`op.drop_column`, `op.alter_column(new_column_name=...)` outside batch mode or with `recreate='never'`). " +
      'For a small table, allow the rule on this revision.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'table-rebuild' || !state.isLive(operation.table)) return null;
    const renames = operation.renamedColumns.map(([from, to]) => `${from} to ${to}`);
    return {
      message:
        `Batch mode rebuilds ${operation.table}: it copies every row into _alembic_tmp_${operation.table}, drops ` +
        `${operation.table} and renames the copy${renames.length > 0 ? `, renaming column ${renames.join(', ')}` : ''}. ` +
        `Writes to ${operation.table} wait for the copy, and old code using a dropped or renamed column breaks.`,
    };
  },
};

export const vacuumFull: Rule = {
  id: 'vacuum-full',
  severity: 'error',
  title: 'VACUUM FULL (SQLite: VACUUM)',
  dialects: ['postgresql', 'sqlite'],
  safeAlternative: {
    default: 'Leave space reclamation to autovacuum, or run pg_repack outside the deploy.',
    sqlite: 'Run VACUUM in a maintenance window, not in a migration.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'vacuum' || !operation.full || !state.isLive(operation.table)) return null;
    if (state.dialect === 'sqlite') return { message: 'VACUUM rewrites the whole database file while holding the write lock.' };
    return { message: `VACUUM FULL rewrites ${operation.table ?? 'every table'} under an ACCESS EXCLUSIVE lock.` };
  },
};

export const cluster: Rule = {
  id: 'cluster',
  severity: 'error',
  title: 'CLUSTER',
  dialects: ['postgresql'],
  safeAlternative: { default: 'Run pg_repack (with --order-by) outside the deploy, or leave the physical order alone.' },
  check(operation, { state }) {
    if (operation.kind !== 'cluster' || !state.isLive(operation.table)) return null;
    return { message: `CLUSTER rewrites ${operation.table ?? 'every clustered table'} in index order under an ACCESS EXCLUSIVE lock.` };
  },
};

export const reindexNotConcurrent: Rule = {
  id: 'reindex-not-concurrent',
  severity: 'error',
  title: 'REINDEX without CONCURRENTLY',
  dialects: ['postgresql'],
  safeAlternative: { default: `\`REINDEX ... CONCURRENTLY\` (PostgreSQL 12+) inside ${AUTOCOMMIT_BLOCK}.` },
  check(operation, { state }) {
    if (operation.kind !== 'reindex' || operation.concurrent) return null;
    const table = operation.table ?? state.tableOfIndex(operation.target);
    if (!state.isLive(table)) return null;
    return {
      message: `REINDEX ${operation.target} without CONCURRENTLY blocks writes to ${table ?? 'the table'} (and reads that use the index) while it rebuilds.`,
    };
  },
};

export const truncate: Rule = {
  id: 'truncate',
  severity: 'error',
  title: 'TRUNCATE',
  dialects: ALL_DIALECTS,
  safeAlternative: {
    default:
      'Delete in batches outside the deploy, or stop using the table in one release and drop it in a later one.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'truncate' || !state.isLive(operation.table)) return null;
    return {
      message: `TRUNCATE ${operation.table} takes an exclusive lock on the table and deletes every row while the running release still uses them.`,
    };
  },
};

export const lockTable: Rule = {
  id: 'lock-table',
  severity: 'error',
  title: 'Explicit LOCK TABLE',
  dialects: ['postgresql', 'mysql'],
  safeAlternative: {
    default:
      'Do not lock tables explicitly in a migration. If the lock orders locks on purpose, keep the transaction short, ' +
      'keep a lock timeout, and allow the rule on this revision.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'lock-table' || !state.isLive(operation.table)) return null;
    return { message: `LOCK TABLE ${operation.table} blocks every writer (and, in ACCESS EXCLUSIVE mode, every reader) until the transaction ends.` };
  },
};
