/** Rules about how long locks are waited for and held. */
import type { RunState } from '../run-state.js';
import type { Rule, RuleHit } from './rule.js';
import { ALL_DIALECTS, brief } from './rule.js';

/**
 * A lock wait the migrations allow themselves beyond this is an error: requests queued behind
 * it outlive gunicorn's default 30 s worker timeout, so they fail instead of waiting.
 */
export const LOCK_TIMEOUT_CAP_SECONDS = 30;

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
 *   earlier in the run, still in effect): satisfied when the value is at most the action's;
 *   larger, it replaces the action's protection: a `warning`, and an `error` above
 *   LOCK_TIMEOUT_CAP_SECONDS (seen in real projects: 120 s, 200 s).
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
      "revision with `op.execute(\"SET lock_timeout = '5s'\")`; never set it to 0 nor above the action's value.",
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
        return ownLockTimeout(subject, table, state, lockTimeoutSeconds);
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

function ownLockTimeout(subject: string, table: string, state: RunState, lockTimeoutSeconds: number): RuleHit | null {
  const setting = state.lockTimeoutSetting;
  const milliseconds = setting?.milliseconds ?? null;
  if (setting === null || milliseconds === null) return null;
  const actionMilliseconds = state.dialect === 'postgresql' ? lockTimeoutSeconds * 1000 : 0;
  const where = setting.statement.revision ? ` (revision ${setting.statement.revision})` : '';
  const action =
    actionMilliseconds > 0
      ? `replacing the action's migration-lock-timeout of ${lockTimeoutSeconds}s`
      : state.dialect === 'postgresql'
        ? 'and the action applies none (migration-lock-timeout: 0)'
        : 'and the action cannot set one on this database';
  const wait = `${subject} under ${brief(setting.statement.text)}${where}, ${action}: it may wait ${seconds(milliseconds)} for its lock while every query on ${table || 'the table'} queues behind it`;
  if (milliseconds > LOCK_TIMEOUT_CAP_SECONDS * 1000) {
    return { message: `${wait}, longer than requests survive (gunicorn's default worker timeout is ${LOCK_TIMEOUT_CAP_SECONDS}s).` };
  }
  if (actionMilliseconds > 0 && milliseconds > actionMilliseconds) return { severity: 'warning', message: `${wait}.` };
  return null;
}

function seconds(milliseconds: number): string {
  return `${Math.round(milliseconds / 100) / 10}s`;
}

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
    // Every row changed: whole-table-data-change reports it, as an error next to DDL.
    if (operation.kind === 'data-change' && operation.allRows === true) return null;
    if (operation.kind === 'data-change' && state.isLive(operation.table)) {
      const ddl = state.ddlInTransaction(operation.table);
      if (!ddl) return null;
      return {
        message:
          `${brief(statement)} runs in the same transaction as ${brief(ddl.text)} (revision ${ddl.revision}): ` +
          'the lock that DDL took is held until the data change has finished and committed.',
      };
    }
    const data = state.dataInTransaction.find((change) => change.allRows) ?? state.dataInTransaction[0];
    if (data && state.ddlInTransaction() === null && state.lockedLiveTable(operation) !== null) {
      return {
        ...(data.allRows ? { severity: 'error' as const } : {}),
        message:
          `${brief(statement)} runs in the same transaction as the data change ${brief(data.text)} ` +
          `(revision ${data.revision}): the lock it takes is held until the whole transaction commits.`,
      };
    }
    return null;
  },
};

export const wholeTableDataChange: Rule = {
  id: 'whole-table-data-change',
  severity: 'warning',
  title: 'UPDATE / DELETE without WHERE on an existing table',
  dialects: ALL_DIALECTS,
  safeAlternative: {
    default:
      'Change rows in batches by key range (`WHERE id BETWEEN ...`), each in its own short transaction ' +
      '(inside `with op.get_context().autocommit_block():`), and never in the transaction of a DDL statement.',
  },
  check(operation, { state, statement }) {
    if (operation.kind !== 'data-change' || operation.allRows !== true || !state.isLive(operation.table)) return null;
    const what = `${brief(statement)} has no WHERE: it changes every row of ${operation.table}`;
    const ddl = state.inTransaction ? state.ddlInTransaction(operation.table) : null;
    if (ddl) {
      return {
        severity: 'error',
        message:
          `${what} in the same transaction as ${brief(ddl.text)} (revision ${ddl.revision}): the DDL's lock blocks ` +
          `every query on ${ddl.table || 'its table'} until every row is rewritten and the transaction commits.`,
      };
    }
    return { message: `${what}, holding a lock on each until it commits: writes to those rows wait, and a large table takes long.` };
  },
};
