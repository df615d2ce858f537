/** The migration inputs, as the config module turns them into part of the typed Settings. */

/**
 * `migration-lint`: `on` lints the pending SQL when migrate-command runs Alembic and stops on an
 * error; `warn` lints and reports but migrates anyway; `off` does not lint (see isLintEnabled).
 */
export type MigrationLintMode = 'on' | 'warn' | 'off';

export interface MigrationSettings {
  /** `migrate-command`: run once in the new release directory before any reload; null = no step. */
  command: string | null;
  /** `migrate-host`: the host (as named in `hosts`) that runs it; null = the first host. */
  host: string | null;
  /** `migration-lint`: on | warn | off; default on. */
  lint: MigrationLintMode;
  /**
   * `migration-lock-timeout`: seconds a migration statement may wait for a lock (PostgreSQL,
   * sent as PGOPTIONS lock_timeout) before it fails and the step retries; 0 = no limit.
   * Suggested default: 5.
   */
  lockTimeoutSeconds: number;
}
