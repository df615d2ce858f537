/**
 * PostgreSQL statements read by the real PostgreSQL parser (libpg-query, WebAssembly) and
 * turned into operations.
 */
import { parse } from 'libpg-query';
import type {
  AlterTableCmd,
  ColumnDef,
  Constraint,
  DefElem,
  Node,
  ParseResult,
  RangeVar,
  VariableSetStmt,
} from 'libpg-query';

import type { ColumnDefault, ColumnType, Operation, ParsedStatement } from './operations.js';
import { normaliseName } from './operations.js';
import type { SqlStatement } from './sql-splitter.js';
import { combineVolatility, functionVolatility, type Volatility } from './volatility.js';

const SERIAL_TYPES = new Set(['serial', 'serial2', 'serial4', 'serial8', 'smallserial', 'bigserial']);
/** LOCK modes from SHARE (5) up block writes; weaker ones only conflict with other DDL. */
const SHARE_LOCK_MODE = 5;

export async function parsePostgresStatements(statements: SqlStatement[]): Promise<ParsedStatement[]> {
  const parsed: ParsedStatement[] = [];
  for (const { text } of statements) {
    try {
      const result = (await parse(text)) as ParseResult;
      const operations = (result.stmts ?? []).flatMap((raw) => (raw.stmt ? operationsOf(raw.stmt) : []));
      parsed.push({ text, operations });
    } catch (error) {
      parsed.push({ text, operations: [], parseError: error instanceof Error ? error.message : String(error) });
    }
  }
  return parsed;
}

function operationsOf(node: Node): Operation[] {
  if ('TransactionStmt' in node) {
    const kind = node.TransactionStmt.kind;
    if (kind === 'TRANS_STMT_BEGIN' || kind === 'TRANS_STMT_START') return [{ kind: 'begin' }];
    if (kind === 'TRANS_STMT_COMMIT' || kind === 'TRANS_STMT_ROLLBACK') return [{ kind: 'commit' }];
    return [{ kind: 'other' }];
  }
  if ('VariableSetStmt' in node) return lockTimeoutSetting(node.VariableSetStmt);
  if ('CreateStmt' in node) return [{ kind: 'create-table', table: relationName(node.CreateStmt.relation) }];
  if ('CreateTableAsStmt' in node && node.CreateTableAsStmt.objtype === 'OBJECT_TABLE') {
    return [{ kind: 'create-table', table: relationName(node.CreateTableAsStmt.into?.rel) }];
  }
  if ('DropStmt' in node) {
    const drop = node.DropStmt;
    const names = (drop.objects ?? []).map(qualifiedName);
    if (drop.removeType === 'OBJECT_TABLE') return names.map((table) => ({ kind: 'drop-table', table }));
    if (drop.removeType === 'OBJECT_INDEX') {
      return names.map((name) => ({ kind: 'drop-index', name, table: null, concurrent: drop.concurrent === true }));
    }
    return [{ kind: 'other' }];
  }
  if ('RenameStmt' in node) {
    const rename = node.RenameStmt;
    const table = relationName(rename.relation);
    if (rename.renameType === 'OBJECT_TABLE') {
      return [{ kind: 'rename-table', table, newName: normaliseName(`"${rename.newname ?? ''}"`) }];
    }
    if (rename.renameType === 'OBJECT_COLUMN' && rename.relationType === 'OBJECT_TABLE') {
      return [{ kind: 'rename-column', table, column: rename.subname ?? '', newName: rename.newname ?? '' }];
    }
    return [{ kind: 'other' }];
  }
  if ('AlterTableStmt' in node) {
    const alter = node.AlterTableStmt;
    if (alter.objtype !== 'OBJECT_TABLE') return [{ kind: 'other' }];
    const table = relationName(alter.relation);
    return (alter.cmds ?? []).flatMap((cmd) => ('AlterTableCmd' in cmd ? alterTableOperations(table, cmd.AlterTableCmd) : []));
  }
  if ('IndexStmt' in node) {
    const index = node.IndexStmt;
    return [
      {
        kind: 'create-index',
        table: relationName(index.relation),
        name: index.idxname ?? null,
        concurrent: index.concurrent === true,
        unique: index.unique === true,
      },
    ];
  }
  if ('ReindexStmt' in node) {
    const reindex = node.ReindexStmt;
    const concurrent = hasOption(reindex.params, 'concurrently');
    const target = reindex.relation ? relationName(reindex.relation) : (reindex.name ?? '');
    const table = reindex.kind === 'REINDEX_OBJECT_TABLE' ? target : null;
    return [{ kind: 'reindex', target, table, concurrent }];
  }
  if ('VacuumStmt' in node) {
    const vacuum = node.VacuumStmt;
    if (vacuum.is_vacuumcmd !== true) return [{ kind: 'other' }]; // ANALYZE
    const full = hasOption(vacuum.options, 'full');
    const tables = (vacuum.rels ?? []).map((rel) => ('VacuumRelation' in rel ? relationName(rel.VacuumRelation.relation) : ''));
    if (tables.length === 0) return [{ kind: 'vacuum', table: null, full }];
    return tables.map((table) => ({ kind: 'vacuum', table, full }));
  }
  if ('ClusterStmt' in node) {
    const relation = node.ClusterStmt.relation;
    return [{ kind: 'cluster', table: relation ? relationName(relation) : null }];
  }
  if ('TruncateStmt' in node) {
    return rangeVars(node.TruncateStmt.relations).map((table) => ({ kind: 'truncate', table }));
  }
  if ('LockStmt' in node) {
    if ((node.LockStmt.mode ?? 8) < SHARE_LOCK_MODE) return [{ kind: 'other' }];
    return rangeVars(node.LockStmt.relations).map((table) => ({ kind: 'lock-table', table }));
  }
  if ('InsertStmt' in node) return [dataChange('INSERT', node.InsertStmt.relation)];
  if ('UpdateStmt' in node) {
    return [dataChange('UPDATE', node.UpdateStmt.relation, node.UpdateStmt.whereClause === undefined)];
  }
  if ('DeleteStmt' in node) {
    return [dataChange('DELETE', node.DeleteStmt.relation, node.DeleteStmt.whereClause === undefined)];
  }
  if ('MergeStmt' in node) return [dataChange('MERGE', node.MergeStmt.relation)];
  if ('CopyStmt' in node && node.CopyStmt.is_from === true) return [dataChange('COPY', node.CopyStmt.relation)];
  if ('CreateTrigStmt' in node) {
    // Takes SHARE ROW EXCLUSIVE on the table: blocks writes while it waits.
    return [{ kind: 'alter-table-other', table: relationName(node.CreateTrigStmt.relation), online: false }];
  }
  return [{ kind: 'other' }];
}

function alterTableOperations(table: string, cmd: AlterTableCmd): Operation[] {
  const column = cmd.name ?? '';
  switch (cmd.subtype) {
    case 'AT_AddColumn':
      return cmd.def && 'ColumnDef' in cmd.def ? addColumn(table, cmd.def.ColumnDef) : [];
    case 'AT_DropColumn':
      return [{ kind: 'drop-column', table, column }];
    case 'AT_AlterColumnType': {
      const def = cmd.def && 'ColumnDef' in cmd.def ? cmd.def.ColumnDef : undefined;
      const newType = columnType(def);
      const using = def?.raw_default !== undefined;
      return [{ kind: 'alter-column-type', table, column, online: false, ...(newType ? { newType } : {}), using }];
    }
    case 'AT_SetNotNull':
      return [{ kind: 'set-not-null', table, column }];
    case 'AT_AddConstraint':
      return cmd.def && 'Constraint' in cmd.def ? [addConstraint(table, cmd.def.Constraint)] : [];
    case 'AT_ValidateConstraint':
      return [{ kind: 'validate-constraint', table, name: column }];
    default:
      return [{ kind: 'alter-table-other', table, online: false }];
  }
}

function addColumn(table: string, def: ColumnDef): Operation[] {
  const constraints = (def.constraints ?? []).flatMap((node) => ('Constraint' in node ? [node.Constraint] : []));
  const typeName = stringsOf(def.typeName?.names).pop()?.toLowerCase() ?? '';
  const defaultExpr = constraints.find((constraint) => constraint.contype === 'CONSTR_DEFAULT')?.raw_expr;
  let generated: 'identity' | 'serial' | 'stored' | null = null;
  if (SERIAL_TYPES.has(typeName)) generated = 'serial';
  if (constraints.some((constraint) => constraint.contype === 'CONSTR_IDENTITY')) generated = 'identity';
  if (constraints.some((constraint) => constraint.contype === 'CONSTR_GENERATED')) generated = 'stored';
  const column = def.colname ?? '';
  const operations: Operation[] = [
    {
      kind: 'add-column',
      table,
      column,
      notNull: constraints.some((constraint) => constraint.contype === 'CONSTR_NOTNULL' || constraint.contype === 'CONSTR_PRIMARY'),
      default: defaultExpr ? classifyDefault(defaultExpr) : { kind: 'none' },
      generated,
      ...(columnType(def) ? { type: columnType(def) } : {}),
    },
  ];
  for (const constraint of constraints) {
    if (constraint.contype === 'CONSTR_UNIQUE' || constraint.contype === 'CONSTR_PRIMARY') {
      operations.push(addConstraint(table, constraint));
    }
  }
  return operations;
}

function addConstraint(table: string, constraint: Constraint): Operation {
  const types: Partial<Record<string, 'foreign-key' | 'check' | 'unique' | 'primary-key' | 'exclusion'>> = {
    CONSTR_FOREIGN: 'foreign-key',
    CONSTR_CHECK: 'check',
    CONSTR_UNIQUE: 'unique',
    CONSTR_PRIMARY: 'primary-key',
    CONSTR_EXCLUSION: 'exclusion',
  };
  const type = types[constraint.contype ?? ''] ?? 'other';
  return {
    kind: 'add-constraint',
    table,
    name: constraint.conname ?? null,
    type,
    validated: constraint.skip_validation !== true,
    usingIndex: constraint.indexname !== undefined,
    notNullColumn: type === 'check' ? notNullColumnOf(constraint.raw_expr) : null,
    referencedTable: constraint.pktable ? relationName(constraint.pktable) : null,
  };
}

/** `varchar(200)` -> { varchar, 200 }; `text` -> { text, null }; `numeric(12, 2)` -> { numeric, null }. */
function columnType(def: ColumnDef | undefined): ColumnType | undefined {
  const name = stringsOf(def?.typeName?.names).pop()?.toLowerCase();
  if (name === undefined) return undefined;
  const modifiers = def?.typeName?.typmods ?? [];
  const first = modifiers[0];
  const length = name === 'varchar' && modifiers.length === 1 && first && 'A_Const' in first ? (first.A_Const.ival?.ival ?? null) : null;
  return { name, length };
}

/** `CHECK (col IS NOT NULL)`: the shape that lets SET NOT NULL skip its table scan. */
function notNullColumnOf(expr: Node | undefined): string | null {
  if (!expr || !('NullTest' in expr) || expr.NullTest.nulltesttype !== 'IS_NOT_NULL') return null;
  const arg = expr.NullTest.arg;
  if (!arg || !('ColumnRef' in arg)) return null;
  const fields = stringsOf(arg.ColumnRef.fields);
  return fields.length === 1 ? (fields[0] ?? null) : null;
}

function classifyDefault(expr: Node): ColumnDefault {
  const calls: Volatility[] = [];
  const names: string[] = [];
  walk(expr, (key, value) => {
    if (key === 'FuncCall') {
      const name = stringsOf((value as { funcname?: Node[] }).funcname).join('.');
      names.push(name);
      calls.push(functionVolatility(name));
    } else if (key === 'SQLValueFunction') {
      calls.push('stable'); // CURRENT_TIMESTAMP, CURRENT_DATE, ...
    } else if (key === 'SubLink') {
      calls.push('unknown');
    }
  });
  const volatility = combineVolatility(calls);
  const text = names.length > 0 ? names.map((name) => `${name}()`).join(', ') : 'expression';
  if (volatility === null) return { kind: 'constant' };
  return { kind: volatility, text };
}

function lockTimeoutSetting(set: VariableSetStmt): Operation[] {
  const local = set.is_local === true;
  const reset = { kind: 'set-lock-timeout', value: 'reset', local, milliseconds: null } as const;
  if (set.kind === 'VAR_RESET_ALL') return [reset];
  if (set.name !== 'lock_timeout') return [{ kind: 'other' }];
  if (set.kind === 'VAR_RESET' || set.kind === 'VAR_SET_DEFAULT') return [reset];
  const arg = set.args?.[0];
  const constant = arg && 'A_Const' in arg ? arg.A_Const : undefined;
  const value = constant ? (constant.sval?.sval ?? constant.fval?.fval ?? String(constant.ival?.ival ?? 0)) : '';
  if (isZeroDuration(value)) return [{ kind: 'set-lock-timeout', value: 'disabled', local, milliseconds: null }];
  return [{ kind: 'set-lock-timeout', value: 'limited', local, milliseconds: durationMilliseconds(value) }];
}

const DURATION_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** `'120s'`, `'2min'`, `5000` (a bare number is milliseconds for lock_timeout); null when unreadable. */
function durationMilliseconds(value: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$/i.exec(value);
  if (!match) return null;
  return Number(match[1]) * (DURATION_UNITS[(match[2] ?? 'ms').toLowerCase()] ?? 1);
}

/** `0`, `'0'`, `'0s'`, `'0ms'`: PostgreSQL reads all of them as "wait forever". */
function isZeroDuration(value: string): boolean {
  return /^\s*0+(?:\.0*)?\s*(?:us|ms|s|min|h|d)?\s*$/i.test(value);
}

function dataChange(verb: 'INSERT' | 'UPDATE' | 'DELETE' | 'MERGE' | 'COPY', relation: RangeVar | undefined, allRows = false): Operation {
  return { kind: 'data-change', verb, table: relationName(relation), ...(allRows ? { allRows } : {}) };
}

function relationName(relation: RangeVar | undefined): string {
  if (!relation) return '';
  const parts = [relation.schemaname, relation.relname].filter((part): part is string => part !== undefined);
  return normaliseName(parts.map((part) => `"${part}"`).join('.'));
}

function qualifiedName(node: Node): string {
  const parts = 'List' in node ? stringsOf(node.List.items) : stringsOf([node]);
  return normaliseName(parts.map((part) => `"${part}"`).join('.'));
}

function rangeVars(nodes: Node[] | undefined): string[] {
  return (nodes ?? []).flatMap((node) => ('RangeVar' in node ? [relationName(node.RangeVar)] : []));
}

function stringsOf(nodes: Node[] | undefined): string[] {
  return (nodes ?? []).flatMap((node) => ('String' in node ? [node.String.sval ?? ''] : []));
}

function hasOption(options: Node[] | undefined, name: string): boolean {
  return (options ?? []).some((option) => 'DefElem' in option && isEnabled(option.DefElem, name));
}

/** `FULL`, `FULL true`, but not `FULL false`. */
function isEnabled(option: DefElem, name: string): boolean {
  if (option.defname !== name) return false;
  const arg = option.arg;
  if (!arg) return true;
  if ('Boolean' in arg) return arg.Boolean.boolval === true;
  if ('String' in arg) return !/^(false|off|0)$/i.test(arg.String.sval ?? '');
  return true;
}

function walk(value: unknown, visit: (key: string, value: unknown) => void): void {
  if (Array.isArray(value)) {
    value.forEach((item) => walk(item, visit));
  } else if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      visit(key, child);
      walk(child, visit);
    }
  }
}
