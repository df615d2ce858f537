/** Rules about how long locks are waited for and held. */
import type { Rule } from './rule.js';
import { ALL_DIALECTS, brief } from './rule.js';

/**
 * `lock-timeout`: a statement that locks a live table must not wait for its lock forever.
 * Behind a long-running transaction the migration's lock request queues, and every
 * application query on the table queues behind the migration: an outage with no error.
 *
 * How it meets the action's own `migration-lock-timeout`:
 * - PostgreSQL, with the action's timeout on (> 0): the action starts the migrate command
 *   with `PGOPTIONS='-c lock_timeout=...'`, which libpq (psycopg2, psycopg 3) sends as the
 *   session's lock_timeout, and retries a lock timeout with backoff. The rule is then
 *   satisfied and reported as `info`, once per revision that takes such locks. (Drivers
 *   that do not use libpq, such as asyncpg or pg8000, ignore PGOPTIONS: set lock_timeout
 *   in env.py or the migration if you use one.)
 * - The action's timeout is off (`migration-lock-timeout: 0`) and the migrations set none:
 *   `error`.
 * - The migrations set `lock_timeout` themselves (`SET` or `SET LOCAL`, in this revision or
 *   earlier in the run, still in effect): satisfied, nothing reported.
 * - The migrations set it to 0 (`SET lock_timeout = 0`): `error` whatever the action does,
 *   since the SQL overrides the session value PGOPTIONS gave. `RESET lock_timeout` returns
 *   to the action's value.
 * - MySQL: the action cannot enforce `lock_wait_timeout` (no client reads it from the
 *   environment) and the server default is a year, so a revision whose DDL runs without
 *   `SET SESSION lock_wait_timeout = n` earlier in the run is an `error`.
 * - SQLite has no lock wait setting in SQL: the rule does not apply.
 */
export const lockTimeout: Rule = {
  id: 'lock-timeout',
  severity: 'error',
  title: 'Lock taken with no lock timeout',
  dialects: ['postgresql', 'mysql'],
  oncePerRevision: true,
  safeAlternative: {
    default:
      'Keep `migration-lock-timeout` on (the action applies it through PGOPTIONS and retries), or begin the ' +
      "revision with `op.execute(\"SET lock_timeout = '5s'\")`; never set it to 0.",
    mysql:
      "Begin the migration with `op.execute('SET SESSION lock_wait_timeout = 5')` (before the first DDL); " +
      'the action can only enforce a lock timeout on PostgreSQL.',
  },
  check(operation, { state, statement, lockTimeoutSeconds }) {
    const table = state.lockedLiveTable(operation);
    if (table === null) return null;
    const subject = `${brief(statement)} locks ${table || 'a table'}`;
    const queue = `behind a long-running transaction it waits forever, and every query on ${table || 'the table'} queues behind it`;
    switch (state.lockTimeout) {
      case 'sql':
        return null;
      case 'action':
        return {
          severity: 'info',
          message:
            `${subject}; the action's lock_timeout (${lockTimeoutSeconds}s, sent through PGOPTIONS) bounds the wait, ` +
            'and a lock timeout is retried with backoff.',
        };
      case 'disabled':
        return {
          message: `${subject} after the migrations set lock_timeout to 0 (which also overrides the action's): ${queue}.`,
        };
      case 'none':
        return {
          message:
            state.dialect === 'mysql'
              ? `${subject} with MySQL's default lock_wait_timeout of a year: ${queue}.`
              : `${subject} with no lock_timeout: ${queue}.`,
        };
    }
  },
};

export const dataInDdlTransaction: Rule = {
  id: 'data-in-ddl-transaction',
  severity: 'warning',
  title: 'INSERT / UPDATE / DELETE in the same transaction as DDL',
  dialects: ALL_DIALECTS,
  safeAlternative: {
    default:
      'Put backfills in their own revision and run migrations with `transaction_per_migration=True` (env.py), ' +
      'or run the data change in batches inside `with op.get_context().autocommit_block():`; keep DDL transactions short.',
  },
  check(operation, { state, statement }) {
    if (!state.inTransaction) return null;
    if (operation.kind === 'data-change' && state.isLive(operation.table)) {
      const ddl = state.ddlInTransaction(operation.table);
      if (!ddl) return null;
      return {
        message:
          `${brief(statement)} runs in the same transaction as ${brief(ddl.text)} (revision ${ddl.revision}): ` +
          'the lock that DDL took is held until the data change has finished and committed.',
      };
    }
    const data = state.dataInTransaction[0];
    if (data && state.ddlInTransaction() === null && state.lockedLiveTable(operation) !== null) {
      return {
        message:
          `${brief(statement)} runs in the same transaction as the data change ${brief(data.text)} ` +
          `(revision ${data.revision}): the lock it takes is held until the whole transaction commits.`,
      };
    }
    return null;
  },
};
