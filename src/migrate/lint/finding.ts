/** What the lint reports. */

export type Severity = 'error' | 'warning' | 'info';

/** The SQL flavour of the pending migrations, as Alembic's context reports it. */
export type Dialect = 'postgresql' | 'mysql' | 'sqlite' | 'other';

export interface Finding {
  /** Rule id, e.g. `drop-column` (see RULES.md). */
  rule: string;
  severity: Severity;
  revision: string;
  /** The revision's file relative to the release directory; empty when Alembic did not say. */
  file: string;
  /** 1-based line in that file: the allowance comment when allowed, else `def upgrade`. */
  line?: number;
  statement: string;
  message: string;
  safeAlternative: string;
  /** The revision allows this rule with a `# graceful-deploy: allow=` comment. */
  allowed: boolean;
  allowReason?: string;
}

/** Findings that stop a deploy: errors no allowance covers. */
export function blockingFindings(findings: readonly Finding[]): Finding[] {
  return findings.filter((finding) => finding.severity === 'error' && !finding.allowed);
}
