/** The migration inputs, as the config module turns them into part of the typed Settings. */

/** `migration-lint`: `auto` lints when migrate-command runs Alembic (see isLintEnabled). */
export type MigrationLintMode = 'auto' | 'on' | 'off';

export interface MigrationSettings {
  /** `migrate-command`: run once in the new release directory before any reload; null = no step. */
  command: string | null;
  /** `migrate-host`: the host (as named in `hosts`) that runs it; null = the first host. */
  host: string | null;
  /** `migration-lint`: auto | on | off; default auto. */
  lint: MigrationLintMode;
  /** `allow-unsafe-migrations`: lint errors are reported but do not stop the deploy; default false. */
  allowUnsafe: boolean;
  /**
   * `migration-lock-timeout`: seconds a migration statement may wait for a lock (PostgreSQL,
   * sent as PGOPTIONS lock_timeout) before it fails and the step retries; 0 = no limit.
   * Suggested default: 5.
   */
  lockTimeoutSeconds: number;
}
