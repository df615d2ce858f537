/** Running the lint on a snapshot of real Alembic output, and reading its findings briefly. */
import { lintMigrations, type Dialect, type Finding } from '../../../src/migrate/lint/index.js';
import { splitOfflineSql } from '../../../src/migrate/offline-sql.js';
import { revisionFiles, snapshot } from './fixtures.js';

export async function lintSnapshot(
  name: string,
  project: string,
  dialect: Dialect,
  lockTimeoutSeconds = 0,
  versions?: string,
): Promise<Finding[]> {
  return lintMigrations({
    dialect,
    script: splitOfflineSql(snapshot(`${name}.sql`)),
    files: revisionFiles(project, versions),
    lockTimeoutSeconds,
  });
}

/** `<revision> <first line of the statement>` of each finding of a rule. */
export function hits(findings: readonly Finding[], rule: string): string[] {
  return findings
    .filter((finding) => finding.rule === rule)
    .map((finding) => `${finding.revision} ${finding.statement.split('\n')[0]?.trim() ?? ''}`);
}
