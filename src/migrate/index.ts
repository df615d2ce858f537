/** The migration step and its safety lint: what the rest of the action uses. */
export { isLintEnabled, parseAlembicInvocation, type AlembicInvocation } from './alembic-invocation.js';
export { findingAnnotations, formatFindingsMarkdown, type FindingAnnotation, type SummaryContext } from './findings-report.js';
export { blockingFindings, lintMigrations, RULES, type Dialect, type Finding, type Severity } from './lint/index.js';
export { MigrationCommandError, MigrationError, MigrationLintError, MultipleHeadsError } from './migration-errors.js';
export type { MigrationLintMode, MigrationSettings } from './migration-settings.js';
export { runMigrationStep, type MigrationResult, type MigrationStepOptions } from './migration-step.js';
export { splitOfflineSql, type OfflineScript, type RevisionChunk } from './offline-sql.js';
export { parseAllowances, type Allowance } from './allowances.js';
