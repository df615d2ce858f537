/** Every rule, in the order findings are listed for one statement. RULES.md documents each. */
import type { Rule } from './rule.js';
import { dropColumn, dropTable, renameColumn, renameTable } from './compatibility-rules.js';
import { notNullWithoutDefault, volatileDefault } from './column-rules.js';
import {
  alterColumnType,
  cluster,
  concurrentlyInTransaction,
  constraintNotValid,
  indexNotConcurrent,
  lockTable,
  reindexNotConcurrent,
  setNotNull,
  tableRebuild,
  truncate,
  uniqueWithoutIndex,
  vacuumFull,
} from './locking-rules.js';
import { dataInDdlTransaction, lockTimeout, wholeTableDataChange } from './transaction-rules.js';

export type { Rule, RuleContext, RuleHit } from './rule.js';

export const RULES: readonly Rule[] = [
  lockTimeout,
  indexNotConcurrent,
  concurrentlyInTransaction,
  notNullWithoutDefault,
  volatileDefault,
  setNotNull,
  constraintNotValid,
  uniqueWithoutIndex,
  alterColumnType,
  tableRebuild,
  dropColumn,
  dropTable,
  renameColumn,
  renameTable,
  vacuumFull,
  cluster,
  reindexNotConcurrent,
  truncate,
  lockTable,
  dataInDdlTransaction,
  wholeTableDataChange,
];

/** Findings about the lint itself rather than about a statement's effect. */
export const UNPARSED_STATEMENT = {
  id: 'unparsed-statement',
  severity: 'warning',
  title: 'Statement the parser could not read',
  safeAlternative: {
    default: 'Check the statement by hand; if it is fine, allow `unparsed-statement` on this revision.',
  },
} as const;

export const OFFLINE_RENDER = {
  id: 'offline-render',
  severity: 'error',
  title: 'Revision that cannot render as SQL offline',
  safeAlternative: {
    default:
      'Keep reads of data out of schema migrations (do them in a data script or the application), or check the ' +
      'revision by hand and allow `offline-render` on it with the reason.',
  },
} as const;

export const UNKNOWN_ALLOWANCE = {
  id: 'unknown-allowance',
  severity: 'warning',
  title: 'Allowance comment naming no rule',
  safeAlternative: { default: 'Use the rule ids listed in RULES.md.' },
} as const;

export const RULE_IDS: ReadonlySet<string> = new Set([
  ...RULES.map((rule) => rule.id),
  UNPARSED_STATEMENT.id,
  OFFLINE_RENDER.id,
]);
