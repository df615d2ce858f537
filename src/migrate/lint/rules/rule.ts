/** The shape of a lint rule; the rules themselves live in the sibling modules. */
import type { Dialect, Severity } from '../finding.js';
import type { Operation } from '../operations.js';
import type { RevisionHints } from '../revision-source.js';
import type { RunState } from '../run-state.js';

export interface RuleHit {
  message: string;
  /** Overrides the rule's severity for this hit (e.g. info when the action covers it). */
  severity?: Severity;
}

export interface RuleContext {
  /** The run so far, before this operation takes effect. */
  state: RunState;
  /** Text of the statement the operation comes from. */
  statement: string;
  /** The action's lock timeout in seconds; 0 when it applies none. */
  lockTimeoutSeconds: number;
  /** What the revision's Python says beyond its SQL (existing types, index tables). */
  hints: RevisionHints;
}

export interface Rule {
  /** Stable id, used in allowance comments and findings. */
  id: string;
  severity: Severity;
  /** One line for docs and summaries. */
  title: string;
  dialects: readonly Dialect[];
  /** What to do instead; `default` unless the dialect has its own text. */
  safeAlternative: { default: string } & Partial<Record<Dialect, string>>;
  /** Report at most one hit per revision (with the same severity). */
  oncePerRevision?: boolean;
  check(operation: Operation, context: RuleContext): RuleHit | null;
}

export const ALL_DIALECTS: readonly Dialect[] = ['postgresql', 'mysql', 'sqlite', 'other'];

/** The first line of a statement, shortened, to quote it inside a message. */
export function brief(statement: string): string {
  const line = statement.split('\n')[0]?.trim() ?? '';
  return line.length > 80 ? `${line.slice(0, 77)}...` : line;
}
