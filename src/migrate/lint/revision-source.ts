/**
 * What a revision's Python says that its rendered SQL does not: the type a column had before
 * `op.alter_column(..., existing_type=...)` (PostgreSQL's `ALTER COLUMN ... TYPE` names only
 * the new one), and the table of an index `op.drop_index(..., table_name=...)` drops
 * (`DROP INDEX ix` names none). Read from the text of the calls Alembic's autogenerate and
 * people write; a call it cannot read leaves nothing, and the lint then knows what the SQL
 * alone tells it. Only the upgrade side is read: a `downgrade()` repeats the same calls with
 * the types swapped, and its `existing_type=` is the type *after* the upgrade.
 */
import type { ColumnType } from './operations.js';
import { normaliseName } from './operations.js';

export interface RevisionHints {
  /** `table.column` (or `.column` when the table is unknown) -> the type before the change. */
  existingTypes: ReadonlyMap<string, ColumnType>;
  /** Index name -> its table. */
  indexTables: ReadonlyMap<string, string>;
}

export function readRevisionHints(source: string): RevisionHints {
  const existingTypes = new Map<string, ColumnType>();
  const indexTables = new Map<string, string>();
  for (const call of calls(withoutDowngrades(source))) {
    const positional = call.args.filter((arg) => arg.keyword === null).map((arg) => stringValue(arg.value));
    const keyword = (name: string): string | undefined => call.args.find((arg) => arg.keyword === name)?.value;
    const [first, second] = call.batchTable === null ? positional : [call.batchTable, ...positional];
    if (call.name === 'alter_column') {
      const existing = keyword('existing_type');
      const type = existing === undefined ? null : sqlalchemyType(existing);
      const table = stringValue(keyword('table_name') ?? '') ?? first;
      const column = stringValue(keyword('column_name') ?? '') ?? second;
      if (type && column) existingTypes.set(`${table ? normaliseName(table) : ''}.${normaliseName(column)}`, type);
    } else if (call.name === 'drop_index') {
      const name = call.batchTable === null ? first : positional[0];
      const table = stringValue(keyword('table_name') ?? '') ?? (call.batchTable ?? positional[1]);
      const indexName = name ?? stringValue(keyword('index_name') ?? '');
      if (indexName && table) indexTables.set(normaliseName(indexName), normaliseName(table));
    }
  }
  return { existingTypes, indexTables };
}

/** The type a revision says a column had: by table and column, else by column alone. */
export function existingType(hints: RevisionHints, table: string, column: string): ColumnType | null {
  return hints.existingTypes.get(`${table}.${column}`) ?? hints.existingTypes.get(`.${column}`) ?? null;
}

/**
 * The source without its `def downgrade...():` functions (to the next statement at column 0;
 * a comment or the `)` closing a long signature there does not end one).
 */
function withoutDowngrades(source: string): string {
  let inDowngrade = false;
  const kept: string[] = [];
  for (const line of source.split('\n')) {
    if (/^[^\s#)]/.test(line)) inDowngrade = /^(?:async\s+)?def\s+downgrade\w*\s*\(/.test(line);
    if (!inDowngrade) kept.push(line);
  }
  return kept.join('\n');
}

interface Call {
  name: 'alter_column' | 'drop_index';
  /** The table of the enclosing `with op.batch_alter_table('t') as batch_op:`, for batch_op calls. */
  batchTable: string | null;
  args: Array<{ keyword: string | null; value: string }>;
}

const CALL = /\b(op|batch_op|\w+)\.(alter_column|drop_index|batch_alter_table)\s*\(/g;

function calls(source: string): Call[] {
  const found: Call[] = [];
  let batchTable: string | null = null;
  for (const match of source.matchAll(CALL)) {
    const open = (match.index ?? 0) + match[0].length - 1;
    const args = splitArguments(argumentText(source, open));
    if (match[2] === 'batch_alter_table') {
      batchTable = stringValue(args.find((arg) => arg.keyword === 'table_name' || arg.keyword === null)?.value ?? '');
      continue;
    }
    const viaOp = match[1] === 'op';
    found.push({ name: match[2] as Call['name'], batchTable: viaOp ? null : batchTable, args });
  }
  return found;
}

/** The text between the parenthesis at `open` and its match, skipping strings. */
function argumentText(source: string, open: number): string {
  let depth = 0;
  for (let index = open; index < source.length; index += 1) {
    const char = source[index] ?? '';
    if (char === '"' || char === "'") {
      index = endOfString(source, index);
    } else if ('([{'.includes(char)) {
      depth += 1;
    } else if (')]}'.includes(char)) {
      depth -= 1;
      if (depth === 0) return source.slice(open + 1, index);
    }
  }
  return source.slice(open + 1);
}

function endOfString(source: string, open: number): number {
  const quote = source[open] ?? '';
  for (let index = open + 1; index < source.length; index += 1) {
    if (source[index] === '\\') index += 1;
    else if (source[index] === quote) return index;
  }
  return source.length;
}

function splitArguments(text: string): Array<{ keyword: string | null; value: string }> {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index] ?? '';
    if (char === '"' || char === "'") index = endOfString(text, index);
    else if ('([{'.includes(char)) depth += 1;
    else if (')]}'.includes(char)) depth -= 1;
    else if (char === ',' && depth === 0) {
      parts.push(text.slice(start, index));
      start = index + 1;
    }
  }
  parts.push(text.slice(start));
  return parts
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      const keyword = /^(\w+)\s*=(?!=)\s*([\s\S]*)$/.exec(part);
      return keyword ? { keyword: keyword[1] ?? '', value: (keyword[2] ?? '').trim() } : { keyword: null, value: part };
    });
}

/** `'users'`, `"users"`, `op.f('ix_users_email')` -> the string; anything else -> null. */
function stringValue(value: string): string | null {
  const match = /^(?:\w+\.f\(\s*)?(?:[rbu]?)(['"])(.*?)\1\s*\)?$/s.exec(value.trim());
  return match ? (match[2] ?? null) : null;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'varchar',
  varchar: 'varchar',
  unicode: 'varchar',
  nvarchar: 'varchar',
  text: 'text',
  unicodetext: 'text',
  integer: 'int4',
  int: 'int4',
  biginteger: 'int8',
  bigint: 'int8',
  smallinteger: 'int2',
  smallint: 'int2',
  numeric: 'numeric',
  char: 'bpchar',
};

/** `sa.VARCHAR(length=200)`, `sa.String(200)`, `sa.Text()`, `postgresql.TEXT` -> a ColumnType. */
export function sqlalchemyType(expression: string): ColumnType | null {
  const match = /^(?:[\w.]*\.)?(\w+)\s*(?:\(([\s\S]*)\))?$/.exec(expression.trim());
  if (!match) return null;
  const raw = (match[1] ?? '').toLowerCase();
  const name = TYPE_NAMES[raw] ?? raw;
  if (name !== 'varchar') return { name, length: null };
  const args = splitArguments(match[2] ?? '');
  const length = args.find((arg) => arg.keyword === 'length' || arg.keyword === null)?.value;
  return { name, length: length !== undefined && /^\d+$/.test(length) ? Number(length) : null };
}
