import type { RunIdentity } from './run-identity.js';

/** One run's outcome on one host, as a person on the box reads it in <app-dir>/deploy.log. */
export interface AuditEntry {
  time: Date;
  identity: RunIdentity;
  mode: string;
  from?: string;
  to?: string;
  strategy: string;
  result: string;
  seconds: number;
}

/**
 * `2026-11-22T10:00:00.000Z run=<url> actor=alice deploy v1 -> v2 strategy=usr2 result=deployed seconds=12.3`:
 * one line, space-separated, every free-text value without spaces, so `grep` and `awk` work on it.
 */
export function auditLine(entry: AuditEntry): string {
  const word = (value: string | undefined) => (value ? value.replace(/\s+/g, '_') : '-');
  return [
    entry.time.toISOString(),
    `run=${word(entry.identity.run)}`,
    `actor=${word(entry.identity.actor)}`,
    word(entry.mode),
    `${word(entry.from)} -> ${word(entry.to)}`,
    `strategy=${word(entry.strategy)}`,
    `result=${word(entry.result)}`,
    `seconds=${Math.round(entry.seconds * 10) / 10}`,
  ].join(' ');
}
