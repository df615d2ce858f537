/** Typed errors of the migration step. Each names the host it ran on. */
import { DeployError } from '../errors.js';
import type { Dialect, Finding } from './lint/finding.js';

/** What the step had learnt when it stopped, for the outputs and the job summary. */
export interface MigrationProgress {
  revisionBefore: string | null;
  revisionAfter: string | null;
  findings: Finding[];
  dialect: Dialect | null;
}

/** The migration step could not do what it needed (Alembic failed, or its output was unusable). */
export class MigrationError extends DeployError {
  /** Set by runMigrationStep on every error it throws. */
  progress?: MigrationProgress;
}

/** Alembic names several heads: `alembic upgrade head` would refuse to run. */
export class MultipleHeadsError extends MigrationError {
  constructor(
    readonly heads: readonly string[],
    host: string,
  ) {
    super(
      `The migrations have ${heads.length} heads (${heads.join(', ')}); they must have exactly one. ` +
        "Join them with 'alembic merge heads' and commit the merge revision.",
      host,
    );
  }
}

/**
 * Offline rendering printed no SQL for the pending revisions (or stopped before the head):
 * linting it would pass a migration the lint never saw.
 */
export class NothingRenderedError extends MigrationError {
  constructor(
    readonly from: string | null,
    readonly head: string,
    host: string,
  ) {
    const range = from === null ? head : `${from}:${head}`;
    super(
      `The migration lint saw no SQL: 'alembic upgrade ${range} --sql' rendered nothing for the pending revisions ` +
        `up to the head ${head}, so nothing was checked and nothing was migrated. The usual cause is an env.py that does ` +
        "nothing in offline mode (it logs \"can't run migrations offline\" and returns when context.is_offline_mode() " +
        "is true). Fix: make the offline branch call context.configure(url=..., literal_binds=True) and " +
        "context.run_migrations() inside context.begin_transaction() (Alembic's generated env.py does), or set " +
        "'migration-lint: off' to migrate without the lint on purpose.",
      host,
    );
  }
}

/** The lint found errors no allowance covers, and migration-lint is on (not warn). */
export class MigrationLintError extends MigrationError {
  constructor(
    /** Every finding of the run, allowed ones and infos included, for the job summary. */
    readonly findings: readonly Finding[],
    readonly blocking: readonly Finding[],
    host: string,
  ) {
    const listed = blocking
      .slice(0, 5)
      .map((finding) => `${finding.rule} in ${finding.revision}${finding.file ? ` (${finding.file})` : ''}`)
      .join('; ');
    const more = blocking.length > 5 ? `; and ${blocking.length - 5} more` : '';
    super(
      `The migration lint found ${blocking.length} unsafe operation${blocking.length === 1 ? '' : 's'}: ${listed}${more}. ` +
        "Nothing was migrated. Fix the revisions, allow a rule in a revision with '# graceful-deploy: allow=<rule> <reason>', " +
        "or set 'migration-lint: warn'.",
      host,
    );
  }
}

/** The migrate command failed (after the lock-timeout retries, when it was a lock timeout). */
export class MigrationCommandError extends MigrationError {
  constructor(
    host: string,
    readonly code: number,
    /** The last lines of the command's output (standard output and error, interleaved). */
    readonly outputTail: string,
    readonly lockTimeout: boolean,
    readonly attempts: number,
    /** The revision the database is at after the failure, when Alembic could tell. */
    readonly revisionAfter: string | null,
  ) {
    const cause = lockTimeout
      ? `timed out waiting for a lock ${attempts} time${attempts === 1 ? '' : 's'} (something holds a conflicting lock: a long transaction or another migration)`
      : `failed (exit ${code})`;
    const at = revisionAfter === null ? '' : ` The database is at revision ${revisionAfter}.`;
    super(`The migrate command ${cause}.${at}\n${outputTail}`, host);
  }
}
