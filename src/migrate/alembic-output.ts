/** Reading what Alembic prints. */
import type { Dialect } from './lint/finding.js';

/**
 * Revision ids from the standard output of `alembic heads` or `alembic current`: one per
 * line, as `<rev>`, `<rev> (head)`, `<rev> (branch) (head)`, `<rev> (mergepoint)`. Log lines
 * that a custom logging setup may send to standard output are skipped.
 */
export function parseRevisionLines(stdout: string): string[] {
  const revisions: string[] = [];
  for (const line of stdout.split(/\r?\n/)) {
    const match = /^([A-Za-z0-9_.-]+)((?:\s+\([^)]*\))*)\s*$/.exec(line.trim());
    if (match?.[1] && !/^(INFO|WARN|WARNING|ERROR|DEBUG|CRITICAL)$/.test(match[1])) revisions.push(match[1]);
  }
  return [...new Set(revisions)];
}

const IMPLEMENTATIONS: Record<string, Dialect> = {
  PostgresqlImpl: 'postgresql',
  MySQLImpl: 'mysql',
  SQLiteImpl: 'sqlite',
};

/**
 * The database dialect. Alembic logs `Context impl PostgresqlImpl.` (at INFO, on standard
 * error, with the logging setup env.py has by default); without that line the SQL itself
 * is the evidence: batch-mode temp tables and PRAGMA are SQLite, backticks, AUTO_INCREMENT
 * and MODIFY/CHANGE are MySQL, a BEGIN around DDL (transactional DDL) is PostgreSQL.
 */
export function detectDialect(log: string, sql: string): Dialect {
  const impl = /Context impl (\w+)\./.exec(log)?.[1];
  if (impl !== undefined) return IMPLEMENTATIONS[impl] ?? 'other';
  if (/_alembic_tmp_|^PRAGMA\b/im.test(sql)) return 'sqlite';
  if (/`|\bAUTO_INCREMENT\b|^ALTER TABLE \S+ (MODIFY|CHANGE) /im.test(sql)) return 'mysql';
  if (/^BEGIN;$/m.test(sql)) return 'postgresql';
  return 'other';
}

/** PostgreSQL (SQLSTATE 55P03, as psycopg2 and psycopg report it) or MySQL (error 1205). */
export function isLockTimeout(output: string): boolean {
  return /canceling statement due to lock timeout|LockNotAvailable|lock_not_available|Lock wait timeout exceeded/i.test(output);
}

/** The last lines of a command's output, for an error message. */
export function outputTail(output: string, lines = 25): string {
  return output.trimEnd().split(/\r?\n/).slice(-lines).join('\n');
}
