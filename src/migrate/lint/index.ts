/** The migration safety lint's public surface. */
export { lintMigrations, parseStatements, type LintInput, type RevisionFile } from './lint-migrations.js';
export { blockingFindings, type Dialect, type Finding, type Severity } from './finding.js';
export { OFFLINE_RENDER, RULES, UNKNOWN_ALLOWANCE, UNPARSED_STATEMENT, type Rule } from './rules/index.js';
