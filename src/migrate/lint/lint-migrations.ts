/**
 * The migration safety lint: walks the pending SQL of every revision in the order it will run,
 * applies each rule to each operation, and marks what allowance comments allow.
 */
import { findAllowance, parseAllowances, type Allowance } from '../allowances.js';
import type { OfflineScript } from '../offline-sql.js';
import { collapseBatchRebuilds } from './batch-rebuild.js';
import type { Dialect, Finding } from './finding.js';
import { parseGenericStatements } from './generic-parser.js';
import type { Operation, ParsedStatement } from './operations.js';
import { parsePostgresStatements } from './postgres-parser.js';
import { RULE_IDS, RULES, UNKNOWN_ALLOWANCE, UNPARSED_STATEMENT, type Rule } from './rules/index.js';
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
  const findings: Finding[] = [];

  // The preamble (BEGIN, CREATE TABLE alembic_version) only changes the state.
  for (const statement of await parseStatements(input.script.preamble, input.dialect)) {
    for (const operation of statement.operations) state.apply(operation, { text: statement.text, revision: '' });
  }

  for (const chunk of input.script.revisions) {
    const file = input.files[chunk.revision];
    const allowances = parseAllowances(file?.source ?? '');
    const raw: Omit<Finding, 'allowed' | 'line' | 'file' | 'revision'>[] = [];
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
        const context = { state, statement: statement.text, lockTimeoutSeconds: input.lockTimeoutSeconds };
        for (const rule of rules) {
          const hit = rule.check(operation, context);
          if (!hit) continue;
          const severity = hit.severity ?? rule.severity;
          if (rule.oncePerRevision) {
            if (reported.has(`${rule.id}:${severity}`)) continue;
            reported.add(`${rule.id}:${severity}`);
          }
          raw.push({
            rule: rule.id,
            severity,
            statement: statement.text,
            message: hit.message,
            safeAlternative: safeAlternative(rule, input.dialect),
          });
        }
        state.apply(operation, { text: statement.text, revision: chunk.revision });
      }
    }

    const place = { revision: chunk.revision, file: file?.path ?? '' };
    findings.push(...raw.map((finding) => allow({ ...finding, ...place }, allowances, file?.source ?? '')));
    findings.push(...unknownAllowances(allowances, place));
  }
  return findings;
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
