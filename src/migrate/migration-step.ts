/**
 * The migration step: once, on one host, in the new release directory, before any host
 * reloads. With Alembic: require exactly one head, read the revision the database is at
 * (and stop there if it is the head), lint the pending SQL, then run the migrate command
 * with the lock timeout in force, retrying a lock timeout with backoff, and read the
 * revision again.
 */
import type { ExecResult, RemoteHost } from '../remote/remote-host.js';
import type { ShellFragment } from '../remote/shell-quote.js';
import { parseAlembicInvocation } from './alembic-invocation.js';
import {
  currentCommand,
  headsCommand,
  migrateCommand,
  revisionFilesCommand,
  upgradeSqlCommand,
  type AlembicTarget,
} from './alembic-commands.js';
import { detectDialect, isLockTimeout, outputTail, parseRevisionLines } from './alembic-output.js';
import { blockingFindings, type Dialect, type Finding } from './lint/finding.js';
import { lintMigrations, type RevisionFile } from './lint/lint-migrations.js';
import {
  MigrationCommandError,
  MigrationError,
  MigrationLintError,
  MultipleHeadsError,
  NothingRenderedError,
  type MigrationProgress,
} from './migration-errors.js';
import { missesHead, splitOfflineSql } from './offline-sql.js';

export interface MigrationStepOptions {
  releaseDir: string;
  /** `migrate-command`, run by `sh -c` in the release directory. */
  migrateCommand: string;
  /** Lint the pending SQL first (`migration-lint` resolved with isLintEnabled). */
  lint: boolean;
  /** `migration-lint: warn`: lint errors are reported but do not stop the deploy. */
  allowUnsafe: boolean;
  /** `migration-lock-timeout` in seconds; 0 turns it off. */
  lockTimeoutSeconds: number;
  /** Interpreter on the host that can import alembic (e.g. `/srv/app/venv/bin/python`). */
  python: string;
  /** Receives one line at a time, without a host prefix (the caller adds it). */
  log: (line: string) => void;
  /** Retries after a lock timeout; default 3. */
  lockRetries?: number;
  /** Wait before the first retry, doubled each time; default 5 seconds. */
  retryDelaySeconds?: number;
  /** Time limit for the migrate command itself; default: the host's per-command limit. */
  commandTimeoutSeconds?: number;
  /** Injected by tests. */
  sleep?: (milliseconds: number) => Promise<void>;
}

export interface MigrationResult {
  /** The database was already at the head: nothing ran. */
  skipped: boolean;
  /** Null for an empty database, or when the command does not run Alembic. */
  revisionBefore: string | null;
  revisionAfter: string | null;
  findings: Finding[];
  /** Null when the SQL was not linted. */
  dialect: Dialect | null;
}

export async function runMigrationStep(host: RemoteHost, options: MigrationStepOptions): Promise<MigrationResult> {
  const progress: MigrationProgress = { revisionBefore: null, revisionAfter: null, findings: [], dialect: null };
  try {
    return await migrate(host, options, progress);
  } catch (error) {
    if (error instanceof MigrationError) {
      if (error instanceof MigrationCommandError) progress.revisionAfter = error.revisionAfter;
      error.progress = progress;
    }
    throw error;
  }
}

async function migrate(host: RemoteHost, options: MigrationStepOptions, progress: MigrationProgress): Promise<MigrationResult> {
  const invocation = parseAlembicInvocation(options.migrateCommand);
  if (invocation === null && !options.lint) {
    options.log('migrate-command does not run alembic (flask db upgrade, manage.py migrate and wrapper scripts do not name it): running it as it is, without revision checks or lint');
    await runMigrateCommand(host, options, null);
    return { skipped: false, revisionBefore: null, revisionAfter: null, findings: [], dialect: null };
  }
  const target: AlembicTarget = {
    releaseDir: options.releaseDir,
    python: options.python,
    globalArgs: invocation?.globalArgs ?? [],
    configFile: invocation?.configFile ?? null,
    section: invocation?.section ?? null,
  };

  const heads = parseRevisionLines((await alembic(host, 'alembic heads', headsCommand(target))).stdout);
  if (heads.length > 1) throw new MultipleHeadsError(heads, host.name);
  const head = heads[0];
  if (head === undefined) {
    options.log('alembic heads names no revision: nothing to migrate');
    return { skipped: true, revisionBefore: null, revisionAfter: null, findings: [], dialect: null };
  }

  const current = await alembic(host, 'alembic current', currentCommand(target));
  const before = parseRevisionLines(current.stdout);
  const revisionBefore = before.length === 0 ? null : before.join(',');
  progress.revisionBefore = revisionBefore;
  if (before.length === 1 && before[0] === head) {
    options.log(`database already at head ${head}: skipping migrations`);
    return { skipped: true, revisionBefore, revisionAfter: revisionBefore, findings: [], dialect: null };
  }
  options.log(`database at ${revisionBefore ?? 'an empty schema'}; head is ${head}`);

  let findings: Finding[] = [];
  let dialect: Dialect | null = null;
  if (options.lint) {
    if (before.length > 1) {
      throw new MigrationError(
        `The database is at several revisions (${before.join(', ')}); the lint can only read the SQL from one. ` +
          "Set 'migration-lint: off' for this deploy.",
        host.name,
      );
    }
    ({ findings, dialect } = await lint(host, target, options, before[0] ?? null, head, current.stderr, progress));
  }

  await runMigrateCommand(host, options, target, dialect);
  const after = parseRevisionLines((await alembic(host, 'alembic current', currentCommand(target))).stdout);
  const revisionAfter = after.length === 0 ? null : after.join(',');
  options.log(`database now at ${revisionAfter ?? 'an empty schema'}`);
  return { skipped: false, revisionBefore, revisionAfter, findings, dialect };
}

async function lint(
  host: RemoteHost,
  target: AlembicTarget,
  options: MigrationStepOptions,
  from: string | null,
  head: string,
  currentLog: string,
  progress: MigrationProgress,
): Promise<{ findings: Finding[]; dialect: Dialect }> {
  const rendered = await host.exec('render pending migrations as SQL', upgradeSqlCommand(target, from, head), {
    allowFailure: true,
  });
  if (rendered.code !== 0) {
    const hint = /batch mode .* requires a live database connection/.test(rendered.stderr)
      ? " Batch operations on SQLite need the table in --sql mode: pass copy_from=<Table> to batch_alter_table, or set 'migration-lint: off'."
      : '';
    throw new MigrationError(
      `Could not render the pending migrations as SQL for the lint ('alembic upgrade --sql', exit ${rendered.code}).${hint}\n` +
        outputTail(rendered.stderr || rendered.stdout),
      host.name,
    );
  }
  const script = splitOfflineSql(rendered.stdout);
  if (missesHead(script, head)) throw new NothingRenderedError(from, head, host.name);
  const dialect = detectDialect(`${currentLog}\n${rendered.stderr}`, rendered.stdout);
  const revisions = script.revisions.map((chunk) => chunk.revision);
  const files = await revisionFiles(host, target, revisions);
  const findings = await lintMigrations({ dialect, script, files, lockTimeoutSeconds: options.lockTimeoutSeconds });
  Object.assign(progress, { findings, dialect });

  options.log(`lint (${dialect}): ${revisions.length} pending revision${revisions.length === 1 ? '' : 's'}, ${summary(findings)}`);
  for (const finding of findings.filter((item) => item.severity !== 'info')) {
    const state = finding.allowed ? `allowed ${finding.severity}` : finding.severity;
    options.log(`  ${state} ${finding.rule} in ${finding.revision}${finding.file ? ` (${finding.file})` : ''}: ${finding.message}`);
  }
  const blocking = blockingFindings(findings);
  if (blocking.length > 0) {
    if (!options.allowUnsafe) throw new MigrationLintError(findings, blocking, host.name);
    options.log(`migration-lint: warn: migrating despite ${blocking.length} lint error${blocking.length === 1 ? '' : 's'}`);
  }
  return { findings, dialect };
}

async function revisionFiles(
  host: RemoteHost,
  target: AlembicTarget,
  revisions: readonly string[],
): Promise<Record<string, RevisionFile>> {
  if (revisions.length === 0) return {};
  const result = await alembic(host, 'locate revision files', revisionFilesCommand(target, revisions));
  try {
    return JSON.parse(result.stdout) as Record<string, RevisionFile>;
  } catch {
    throw new MigrationError(`Could not read the revision files' locations: ${outputTail(result.stdout, 5)}`, host.name);
  }
}

async function runMigrateCommand(host: RemoteHost, options: MigrationStepOptions, target: AlembicTarget | null, dialect: Dialect | null = null): Promise<void> {
  const retries = options.lockRetries ?? 3;
  const sleep = options.sleep ?? ((milliseconds: number) => new Promise<void>((resolve) => setTimeout(resolve, milliseconds)));
  let delaySeconds = options.retryDelaySeconds ?? 5;
  // PGOPTIONS is always passed; it only means something to PostgreSQL, so only then is it mentioned.
  const timeout = options.lockTimeoutSeconds > 0 && (dialect === null || dialect === 'postgresql') ? ` (lock_timeout ${options.lockTimeoutSeconds}s)` : '';
  for (let attempt = 1; ; attempt += 1) {
    options.log(`running migrate-command${timeout}${attempt > 1 ? `, attempt ${attempt}` : ''}`);
    const result = await host.exec(
      'run migrate-command',
      migrateCommand(options.releaseDir, options.migrateCommand, options.lockTimeoutSeconds),
      {
        allowFailure: true,
        ...(options.commandTimeoutSeconds !== undefined ? { timeoutSeconds: options.commandTimeoutSeconds } : {}),
      },
    );
    const output = `${result.stdout}${result.stderr}`;
    output
      .trimEnd()
      .split('\n')
      .filter((line) => line !== '')
      .forEach((line) => options.log(`  ${line}`));
    if (result.code === 0) return;
    const lockTimedOut = isLockTimeout(output);
    if (!lockTimedOut || attempt > retries) {
      const after = target === null ? null : await revisionAfterFailure(host, target);
      throw new MigrationCommandError(host.name, result.code, outputTail(output), lockTimedOut, attempt, after);
    }
    options.log(`lock timeout: retrying in ${delaySeconds}s (${attempt} of ${retries} retries)`);
    await sleep(delaySeconds * 1000);
    delaySeconds *= 2;
  }
}

/** Best effort: the error is about the migration, not about reading the revision. */
async function revisionAfterFailure(host: RemoteHost, target: AlembicTarget): Promise<string | null> {
  const result = await host.exec('alembic current', currentCommand(target), { allowFailure: true });
  const revisions = result.code === 0 ? parseRevisionLines(result.stdout) : [];
  return revisions.length === 0 ? null : revisions.join(',');
}

/** Runs an Alembic command; a failure becomes a MigrationError with Alembic's own words. */
async function alembic(host: RemoteHost, purpose: string, command: ShellFragment): Promise<ExecResult> {
  const result = await host.exec(purpose, command, { allowFailure: true });
  if (result.code !== 0) {
    throw new MigrationError(`${purpose} failed (exit ${result.code}):\n${outputTail(result.stderr || result.stdout)}`, host.name);
  }
  return result;
}

function summary(findings: readonly Finding[]): string {
  const count = (test: (finding: Finding) => boolean): number => findings.filter(test).length;
  const parts = [
    `${count((finding) => finding.severity === 'error' && !finding.allowed)} errors`,
    `${count((finding) => finding.severity === 'warning' && !finding.allowed)} warnings`,
    `${count((finding) => finding.allowed)} allowed`,
    `${count((finding) => finding.severity === 'info')} info`,
  ];
  return parts.join(', ');
}
