/**
 * The migration safety lint: walks the pending SQL of every revision in the order it will run,
 * applies each rule to each operation, and marks what allowance comments allow.
 */
import { allowanceComment, findAllowance, parseAllowances, type Allowance } from '../allowances.js';
import { renderErrorReason, type OfflineScript } from '../offline-sql.js';
import { collapseBatchRebuilds } from './batch-rebuild.js';
import type { Dialect, Finding } from './finding.js';
import { parseGenericStatements } from './generic-parser.js';
import type { Operation, ParsedStatement } from './operations.js';
import { parsePostgresStatements } from './postgres-parser.js';
import { readRevisionHints } from './revision-source.js';
import { OFFLINE_RENDER, RULE_IDS, RULES, UNKNOWN_ALLOWANCE, UNPARSED_STATEMENT, type Rule } from './rules/index.js';
import { indexNotConcurrent } from './rules/locking-rules.js';
import { RunState } from './run-state.js';
import { splitSqlStatements } from './sql-splitter.js';

/** A revision's script file, as Alembic's ScriptDirectory locates it. */
export interface RevisionFile {
  /** Relative to the release directory. */
  path: string;
  /** The file's text, read for allowance comments. */
  source: string;
}

export interface LintInput {
  dialect: Dialect;
  script: OfflineScript;
  /** Revision id -> its file. A revision missing here is linted with no file and no allowances. */
  files: Readonly<Record<string, RevisionFile>>;
  /** The lock timeout the action applies to the migration (seconds); 0 = none. */
  lockTimeoutSeconds: number;
}

export async function lintMigrations(input: LintInput): Promise<Finding[]> {
  const state = new RunState(input.dialect, input.lockTimeoutSeconds > 0);
  const rules = RULES.filter((rule) => rule.dialects.includes(input.dialect));
  const revisions: Array<{ place: { revision: string; file: string }; source: string; raw: RawFinding[] }> = [];
  /** Index drops in the open transaction, until a DROP TABLE of their table absorbs them. */
  const indexDrops: Array<{ transaction: number; table: string; finding: RawFinding }> = [];

  // The preamble (BEGIN, CREATE TABLE alembic_version) only changes the state.
  for (const statement of await parseStatements(input.script.preamble, input.dialect)) {
    for (const operation of statement.operations) state.apply(operation, { text: statement.text, revision: '' });
  }

  for (const chunk of input.script.revisions) {
    const file = input.files[chunk.revision];
    const hints = readRevisionHints(file?.source ?? '');
    for (const [index, table] of hints.indexTables) state.noteIndexTable(index, table);
    const raw: RawFinding[] = [];
    const reported = new Set<string>();

    for (const statement of collapseBatchRebuilds(await parseStatements(chunk.sql, input.dialect))) {
      if (statement.parseError !== undefined) {
        raw.push({
          rule: UNPARSED_STATEMENT.id,
          severity: UNPARSED_STATEMENT.severity,
          statement: statement.text,
          message: `The parser could not read this statement (${statement.parseError}), so it was not linted.`,
          safeAlternative: UNPARSED_STATEMENT.safeAlternative.default,
        });
      }
      for (const operation of statement.operations.map((op) => withoutBookkeeping(op, statement.text))) {
        const context = { state, statement: statement.text, lockTimeoutSeconds: input.lockTimeoutSeconds, hints };
        if (operation.kind === 'drop-table' && state.isLive(operation.table)) {
          absorbIndexDrops(indexDrops, operation.table, state.transactionId);
        }
        for (const rule of rules) {
          const hit = rule.check(operation, context);
          if (!hit) continue;
          const severity = hit.severity ?? rule.severity;
          if (rule.oncePerRevision) {
            if (reported.has(`${rule.id}:${severity}`)) continue;
            reported.add(`${rule.id}:${severity}`);
          }
          const finding: RawFinding = {
            rule: rule.id,
            severity,
            statement: statement.text,
            message: hit.message,
            safeAlternative: safeAlternative(rule, input.dialect),
          };
          raw.push(finding);
          if (operation.kind === 'drop-index' && state.inTransaction && rule.id === indexNotConcurrent.id) {
            const table = operation.table ?? state.tableOfIndex(operation.name);
            if (table !== null) indexDrops.push({ transaction: state.transactionId, table, finding });
          }
        }
        state.apply(operation, { text: statement.text, revision: chunk.revision });
      }
    }
    if (chunk.renderError !== null) raw.push(offlineRenderFinding(chunk.revision, chunk.renderError));

    revisions.push({ place: { revision: chunk.revision, file: file?.path ?? '' }, source: file?.source ?? '', raw });
  }

  return revisions.flatMap(({ place, source, raw }) => {
    const allowances = parseAllowances(source);
    return [
      ...raw.filter((finding) => !finding.absorbed).map((finding) => allow({ ...withoutAbsorbed(finding), ...place }, allowances, source)),
      ...unknownAllowances(allowances, place),
    ];
  });
}

type RawFinding = Omit<Finding, 'allowed' | 'line' | 'file' | 'revision'> & {
  /** A DROP INDEX reported as part of the DROP TABLE that follows it. */
  absorbed?: true;
};

/**
 * A DROP INDEX followed, in the same transaction, by the DROP TABLE of its table (what
 * autogenerate writes) is part of the table drop: its finding is dropped, and the
 * table drop's finding (drop-table) stands for both.
 */
function absorbIndexDrops(
  drops: ReadonlyArray<{ transaction: number; table: string; finding: RawFinding }>,
  table: string,
  transaction: number,
): void {
  for (const drop of drops) {
    if (drop.table === table && drop.transaction === transaction) drop.finding.absorbed = true;
  }
}

function withoutAbsorbed(finding: RawFinding): Omit<Finding, 'allowed' | 'line' | 'file' | 'revision'> {
  const rest = { ...finding };
  delete rest.absorbed;
  return rest;
}

function offlineRenderFinding(revision: string, error: string): RawFinding {
  return {
    rule: OFFLINE_RENDER.id,
    severity: OFFLINE_RENDER.severity,
    statement: '',
    message:
      `Revision ${revision} cannot be rendered as SQL offline: ${renderErrorReason(error)}. The lint saw its SQL only ` +
      `up to that point; the other revisions were linted. Once you have checked it by hand, add this line to the revision: ` +
      `\`${allowanceComment(OFFLINE_RENDER.id, '<what you checked>')}\`.`,
    safeAlternative: OFFLINE_RENDER.safeAlternative.default,
  };
}

/** Splits and parses SQL with the dialect's parser (libpg-query for PostgreSQL). */
export async function parseStatements(sql: string, dialect: Dialect): Promise<ParsedStatement[]> {
  const statements = splitSqlStatements(sql, { mysql: dialect === 'mysql' });
  return dialect === 'postgresql' ? parsePostgresStatements(statements) : parseGenericStatements(statements);
}

/** Alembic's own writes to its version table are not data changes of the application. */
function withoutBookkeeping(operation: Operation, text: string): Operation {
  if (operation.kind !== 'data-change') return operation;
  return operation.table === 'alembic_version' || /\bversion_num\b/i.test(text) ? { kind: 'other' } : operation;
}

function safeAlternative(rule: Rule, dialect: Dialect): string {
  return rule.safeAlternative[dialect] ?? rule.safeAlternative.default;
}

function allow(
  finding: Omit<Finding, 'allowed' | 'line'>,
  allowances: readonly Allowance[],
  source: string,
): Finding {
  const allowance = findAllowance(allowances, finding.rule);
  const line = allowance?.line ?? upgradeLine(source);
  return {
    ...finding,
    ...(line !== undefined ? { line } : {}),
    allowed: allowance !== undefined,
    ...(allowance?.reason ? { allowReason: allowance.reason } : {}),
  };
}

function unknownAllowances(allowances: readonly Allowance[], place: { revision: string; file: string }): Finding[] {
  return allowances.flatMap((allowance) =>
    allowance.rules
      .filter((rule) => !RULE_IDS.has(rule))
      .map((rule) => ({
        rule: UNKNOWN_ALLOWANCE.id,
        severity: UNKNOWN_ALLOWANCE.severity,
        ...place,
        line: allowance.line,
        statement: '',
        message: `The allowance names '${rule}', which is not a rule, so it allows nothing.`,
        safeAlternative: UNKNOWN_ALLOWANCE.safeAlternative.default,
        allowed: false,
      })),
  );
}

function upgradeLine(source: string): number | undefined {
  const index = source.split(/\r?\n/).findIndex((line) => /^def upgrade\b/.test(line));
  return index === -1 ? undefined : index + 1;
}
