/**
 * Allowance comments: a revision file says, on purpose and with a reason, that a rule may
 * fire for it. The finding is kept (reported as allowed) but no longer fails the deploy.
 *
 *     # graceful-deploy: allow=drop-column,rename-table v2.3 stopped reading users.handle (#412)
 *
 * `allow=` takes one or more rule ids separated by commas (no spaces inside the list); the
 * rest of the line is the reason, shown in the job summary. The comment may stand on its own
 * line or follow code, anywhere in the file, and covers every statement of that revision.
 * There is no wildcard: each rule is allowed by name.
 */

export interface Allowance {
  rules: string[];
  /** The text after the rule list; null when the comment gives none. */
  reason: string | null;
  /** 1-based line of the comment. */
  line: number;
}

const ALLOWANCE = /#\s*graceful-deploy:\s*allow=([A-Za-z0-9_-]+(?:,[A-Za-z0-9_-]+)*)(.*)$/;

export function parseAllowances(source: string): Allowance[] {
  const allowances: Allowance[] = [];
  source.split(/\r?\n/).forEach((text, index) => {
    const match = ALLOWANCE.exec(text);
    if (!match) return;
    const reason = (match[2] ?? '').replace(/^[\s:;,\u2013\u2014-]+/, '').trim();
    allowances.push({
      rules: (match[1] ?? '').split(',').map((rule) => rule.toLowerCase()),
      reason: reason === '' ? null : reason,
      line: index + 1,
    });
  });
  return allowances;
}

/** The comment that allows `rule` in a revision, for messages that tell people what to add. */
export function allowanceComment(rule: string, reason: string): string {
  return `# graceful-deploy: allow=${rule} ${reason}`;
}

/** The first allowance that names the rule. */
export function findAllowance(allowances: readonly Allowance[], rule: string): Allowance | undefined {
  return allowances.find((allowance) => allowance.rules.includes(rule));
}
