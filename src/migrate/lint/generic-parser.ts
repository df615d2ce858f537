/**
 * SQLite and MySQL statements read at token level. Alembic writes DDL in a small, regular
 * subset of SQL (one operation per statement, names quoted only when they must be), so
 * recognising the statement shapes it emits, plus the common hand-written ones, is enough;
 * anything else becomes an `other` operation and no rule fires on it.
 */
import type { ColumnDefault, Operation, ParsedStatement } from './operations.js';
import { normaliseName } from './operations.js';
import type { SqlStatement } from './sql-splitter.js';
import { combineVolatility, functionVolatility, type Volatility } from './volatility.js';

interface Token {
  kind: 'word' | 'ident' | 'string' | 'number' | 'punct';
  text: string;
  /** Upper case text of a word, for keyword comparisons. */
  upper: string;
}

export function parseGenericStatements(statements: SqlStatement[]): ParsedStatement[] {
  return statements.map(({ text }) => ({ text, operations: operationsOf(tokenize(text)) }));
}

const TOKEN = /\s+|--[^\n]*|#[^\n]*|\/\*[\s\S]*?\*\/|'(?:[^'\\]|\\.|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|@{0,2}[A-Za-z_][A-Za-z0-9_$]*|\d+(?:\.\d+)?|./gy;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  let match: RegExpExecArray | null;
  while ((match = TOKEN.exec(text)) !== null) {
    const piece = match[0];
    if (/^(\s|--|#|\/\*)/.test(piece)) continue;
    const first = piece[0] ?? '';
    let kind: Token['kind'] = 'punct';
    if (first === "'") kind = 'string';
    else if (first === '"' || first === '`' || first === '[') kind = 'ident';
    else if (/[A-Za-z_@]/.test(first)) kind = 'word';
    else if (/\d/.test(first)) kind = 'number';
    tokens.push({ kind, text: piece, upper: piece.toUpperCase() });
  }
  return tokens;
}

/** A cursor over the tokens of one statement (or of one ALTER TABLE action). */
class Cursor {
  private index = 0;
  constructor(private readonly tokens: Token[]) {}

  get done(): boolean {
    return this.index >= this.tokens.length;
  }
  peek(offset = 0): Token | undefined {
    return this.tokens[this.index + offset];
  }
  /** Consumes the keywords if they come next, in order. */
  accept(...keywords: string[]): boolean {
    const matches = keywords.every((keyword, offset) => this.peek(offset)?.upper === keyword);
    if (matches) this.index += keywords.length;
    return matches;
  }
  /** Consumes the first of the alternatives that comes next; returns it. */
  acceptAny(...keywords: string[]): string | null {
    const found = keywords.find((keyword) => this.peek()?.upper === keyword);
    if (found !== undefined) this.index += 1;
    return found ?? null;
  }
  next(): Token | undefined {
    const token = this.tokens[this.index];
    this.index += 1;
    return token;
  }
  /** A possibly qualified name: `a`, `"a"`, `` `s`.`a` ``. */
  name(): string {
    let name = this.next()?.text ?? '';
    while (this.peek()?.text === '.' && this.peek(1) !== undefined) {
      this.index += 1;
      name += `.${this.next()?.text ?? ''}`;
    }
    return normaliseName(name);
  }
  rest(): Token[] {
    return this.tokens.slice(this.index);
  }
}

function operationsOf(tokens: Token[]): Operation[] {
  const cursor = new Cursor(tokens);
  const verb = cursor.next()?.upper ?? '';
  switch (verb) {
    case 'BEGIN':
      return [{ kind: 'begin' }];
    case 'START':
      return cursor.accept('TRANSACTION') ? [{ kind: 'begin' }] : [{ kind: 'other' }];
    case 'COMMIT':
    case 'ROLLBACK':
    case 'END':
      return [{ kind: 'commit' }];
    case 'SET':
      return setStatement(cursor);
    case 'CREATE':
      return createStatement(cursor);
    case 'DROP':
      return dropStatement(cursor);
    case 'ALTER':
      return cursor.accept('TABLE') ? alterTable(cursor) : [{ kind: 'other' }];
    case 'RENAME':
      return cursor.acceptAny('TABLE', 'TABLES') ? renameTables(cursor) : [{ kind: 'other' }];
    case 'TRUNCATE':
      cursor.accept('TABLE');
      return [{ kind: 'truncate', table: cursor.name() }];
    case 'LOCK':
      return cursor.acceptAny('TABLE', 'TABLES') ? lockTables(cursor) : [{ kind: 'other' }];
    case 'INSERT':
    case 'REPLACE':
      skipUntil(cursor, ['INTO']);
      cursor.accept('INTO');
      return [{ kind: 'data-change', verb: 'INSERT', table: cursor.name() }];
    case 'UPDATE':
      cursor.acceptAny('LOW_PRIORITY');
      cursor.acceptAny('IGNORE');
      if (cursor.accept('OR')) cursor.next();
      return [{ kind: 'data-change', verb: 'UPDATE', table: cursor.name(), allRows: !hasWhere(cursor) }];
    case 'DELETE':
      skipUntil(cursor, ['FROM']);
      cursor.accept('FROM');
      return [{ kind: 'data-change', verb: 'DELETE', table: cursor.name(), allRows: !hasWhere(cursor) }];
    case 'VACUUM':
      // SQLite: rewrites the whole database file while holding the write lock.
      return [{ kind: 'vacuum', table: null, full: true }];
    default:
      return [{ kind: 'other' }];
  }
}

/** A WHERE outside parentheses (a subquery's WHERE does not limit the rows changed). */
function hasWhere(cursor: Cursor): boolean {
  let depth = 0;
  return cursor.rest().some((token) => {
    if (token.text === '(') depth += 1;
    if (token.text === ')') depth -= 1;
    return depth === 0 && token.upper === 'WHERE';
  });
}

function skipUntil(cursor: Cursor, keywords: string[]): void {
  while (!cursor.done && !keywords.includes(cursor.peek()?.upper ?? '')) {
    if (cursor.peek()?.kind === 'ident') return; // a quoted name: the target table
    cursor.next();
  }
}

/** MySQL `SET [SESSION|LOCAL|@@session.]lock_wait_timeout = n`. */
function setStatement(cursor: Cursor): Operation[] {
  const local = false; // MySQL's SET LOCAL is SESSION; only GLOBAL differs, and changes no session
  if (cursor.acceptAny('GLOBAL', '@@GLOBAL')) return [{ kind: 'other' }];
  cursor.acceptAny('SESSION', 'LOCAL');
  const parts: string[] = [];
  while (!cursor.done && cursor.peek()?.text !== '=' && cursor.peek()?.upper !== 'TO') parts.push(cursor.next()?.text ?? '');
  const name = parts.join('').toLowerCase().replace(/^@@(session\.|local\.)?/, '');
  if (name !== 'lock_wait_timeout' && name !== 'lock_timeout') return [{ kind: 'other' }];
  cursor.next();
  const value = cursor.next();
  if (value?.upper === 'DEFAULT') return [{ kind: 'set-lock-timeout', value: 'reset', local, milliseconds: null }];
  const disabled = /^'?0+'?$/.test(value?.text ?? '');
  // lock_wait_timeout is in seconds.
  const seconds = /^'?(\d+)'?$/.exec(value?.text ?? '')?.[1];
  const milliseconds = seconds === undefined ? null : Number(seconds) * 1000;
  return [{ kind: 'set-lock-timeout', value: disabled ? 'disabled' : 'limited', local, milliseconds }];
}

function createStatement(cursor: Cursor): Operation[] {
  cursor.accept('OR', 'REPLACE');
  cursor.acceptAny('TEMP', 'TEMPORARY');
  const unique = cursor.accept('UNIQUE');
  if (cursor.accept('TABLE')) {
    cursor.accept('IF', 'NOT', 'EXISTS');
    return [{ kind: 'create-table', table: cursor.name() }];
  }
  if (cursor.accept('INDEX')) {
    cursor.accept('IF', 'NOT', 'EXISTS');
    const name = cursor.name();
    if (!cursor.accept('ON')) return [{ kind: 'other' }];
    return [{ kind: 'create-index', table: cursor.name(), name, concurrent: false, unique }];
  }
  return [{ kind: 'other' }];
}

function dropStatement(cursor: Cursor): Operation[] {
  cursor.acceptAny('TEMPORARY');
  if (cursor.accept('TABLE')) {
    cursor.accept('IF', 'EXISTS');
    const tables = [cursor.name()];
    while (cursor.peek()?.text === ',') {
      cursor.next();
      tables.push(cursor.name());
    }
    return tables.map((table) => ({ kind: 'drop-table', table }));
  }
  if (cursor.accept('INDEX')) {
    cursor.accept('IF', 'EXISTS');
    const name = cursor.name();
    const table = cursor.accept('ON') ? cursor.name() : null;
    return [{ kind: 'drop-index', name, table, concurrent: false }];
  }
  return [{ kind: 'other' }];
}

function renameTables(cursor: Cursor): Operation[] {
  const operations: Operation[] = [];
  do {
    const table = cursor.name();
    if (!cursor.accept('TO')) break;
    operations.push({ kind: 'rename-table', table, newName: cursor.name() });
  } while (cursor.peek()?.text === ',' && cursor.next());
  return operations.length > 0 ? operations : [{ kind: 'other' }];
}

function lockTables(cursor: Cursor): Operation[] {
  const operations: Operation[] = [];
  for (const item of splitTopLevel(cursor.rest())) {
    const name = new Cursor(item).name();
    // READ locks let other sessions read; WRITE (the kind that hurts) blocks everyone.
    if (item.some((token) => token.upper === 'WRITE')) operations.push({ kind: 'lock-table', table: name });
  }
  return operations.length > 0 ? operations : [{ kind: 'other' }];
}

function alterTable(cursor: Cursor): Operation[] {
  cursor.accept('ONLY');
  cursor.accept('IF', 'EXISTS');
  const table = cursor.name();
  const actions = splitTopLevel(cursor.rest());
  // MySQL: `ALGORITHM=INSTANT` or `LOCK=NONE` promise the change never blocks (or fails).
  const online = actions.some((action) => /^(ALGORITHM=INSTANT|LOCK=NONE)$/.test(action.map((token) => token.upper).join('')));
  return actions
    .filter((action) => !['ALGORITHM', 'LOCK'].includes(action[0]?.upper ?? ''))
    .flatMap((action) => alterTableAction(table, new Cursor(action), online));
}

const CONSTRAINT_WORDS = ['CONSTRAINT', 'PRIMARY', 'UNIQUE', 'FOREIGN', 'CHECK', 'INDEX', 'KEY', 'FULLTEXT', 'SPATIAL'];

function alterTableAction(table: string, action: Cursor, online: boolean): Operation[] {
  const verb = action.next()?.upper ?? '';
  if (verb === 'ADD') {
    if (CONSTRAINT_WORDS.includes(action.peek()?.upper ?? '')) return [addConstraint(table, action)];
    action.accept('COLUMN');
    action.accept('IF', 'NOT', 'EXISTS');
    return [addColumn(table, action.name(), action.rest())];
  }
  if (verb === 'DROP') {
    if (action.accept('COLUMN') || !CONSTRAINT_WORDS.concat('DEFAULT').includes(action.peek()?.upper ?? '')) {
      action.accept('IF', 'EXISTS');
      return [{ kind: 'drop-column', table, column: action.name() }];
    }
    return [{ kind: 'alter-table-other', table, online }];
  }
  if (verb === 'RENAME') {
    if (action.accept('COLUMN')) {
      const column = action.name();
      action.accept('TO');
      return [{ kind: 'rename-column', table, column, newName: action.name() }];
    }
    if (action.acceptAny('INDEX', 'KEY')) return [{ kind: 'alter-table-other', table, online }];
    action.acceptAny('TO', 'AS');
    return [{ kind: 'rename-table', table, newName: action.name() }];
  }
  if (verb === 'MODIFY') {
    action.accept('COLUMN');
    return [{ kind: 'alter-column-type', table, column: action.name(), online }];
  }
  if (verb === 'CHANGE') {
    action.accept('COLUMN');
    const column = action.name();
    const newName = action.name();
    // Alembic renames a MySQL column with CHANGE, restating its definition unchanged.
    if (newName !== column) return [{ kind: 'rename-column', table, column, newName }];
    return [{ kind: 'alter-column-type', table, column, online }];
  }
  if (verb === 'ALTER') {
    action.accept('COLUMN');
    const column = action.name();
    if (action.accept('SET', 'NOT', 'NULL')) return [{ kind: 'set-not-null', table, column }];
    if (action.accept('TYPE') || action.accept('SET', 'DATA', 'TYPE')) return [{ kind: 'alter-column-type', table, column, online }];
  }
  return [{ kind: 'alter-table-other', table, online }];
}

function addConstraint(table: string, action: Cursor): Operation {
  const name = action.accept('CONSTRAINT') && !CONSTRAINT_WORDS.includes(action.peek()?.upper ?? '') ? action.name() : null;
  const word = action.next()?.upper ?? '';
  const rest = action.rest();
  const types: Record<string, 'foreign-key' | 'check' | 'unique' | 'primary-key'> = {
    FOREIGN: 'foreign-key',
    CHECK: 'check',
    UNIQUE: 'unique',
    PRIMARY: 'primary-key',
  };
  const referencesAt = rest.findIndex((token) => token.upper === 'REFERENCES');
  const referenced = referencesAt === -1 ? null : new Cursor(rest.slice(referencesAt + 1)).name();
  return {
    kind: 'add-constraint',
    table,
    name,
    type: types[word] ?? 'other',
    validated: !rest.some((token, index) => token.upper === 'NOT' && rest[index + 1]?.upper === 'VALID'),
    usingIndex: false,
    notNullColumn: null,
    referencedTable: referenced,
  };
}

function addColumn(table: string, column: string, definition: Token[]): Operation {
  const upper = definition.map((token) => token.upper);
  const has = (...words: string[]): boolean =>
    upper.some((_, index) => words.every((word, offset) => upper[index + offset] === word));
  let generated: 'identity' | 'serial' | 'stored' | null = null;
  if (has('AUTO_INCREMENT') || has('AUTOINCREMENT') || has('SERIAL')) generated = 'serial';
  if (has('GENERATED') && has('STORED')) generated = 'stored';
  return {
    kind: 'add-column',
    table,
    column,
    notNull: has('NOT', 'NULL') || has('PRIMARY', 'KEY'),
    default: columnDefault(definition),
    generated,
  };
}

function columnDefault(definition: Token[]): ColumnDefault {
  const at = definition.findIndex((token) => token.upper === 'DEFAULT');
  if (at === -1) return { kind: 'none' };
  const first = definition[at + 1];
  if (!first || first.upper === 'NULL') return { kind: 'none' };
  // The default is one token, a call `f(...)`, or a parenthesised expression.
  let expression = [first];
  if (first.text === '(' || definition[at + 2]?.text === '(') {
    const open = first.text === '(' ? at + 1 : at + 2;
    let depth = 0;
    let end = open;
    for (; end < definition.length; end += 1) {
      if (definition[end]?.text === '(') depth += 1;
      if (definition[end]?.text === ')') depth -= 1;
      if (depth === 0) break;
    }
    expression = definition.slice(at + 1, end + 1);
  }
  const calls: Volatility[] = [];
  const names: string[] = [];
  expression.forEach((token, index) => {
    if (token.kind !== 'word') return;
    if (expression[index + 1]?.text === '(') {
      names.push(token.text);
      calls.push(functionVolatility(token.text));
    } else if (/^(CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME|LOCALTIME|LOCALTIMESTAMP)$/.test(token.upper)) {
      calls.push('stable');
    }
  });
  const volatility = combineVolatility(calls);
  if (volatility === null) return { kind: 'constant' };
  return { kind: volatility, text: names.length > 0 ? names.map((name) => `${name}()`).join(', ') : 'expression' };
}

/** Splits tokens at commas outside parentheses. */
function splitTopLevel(tokens: Token[]): Token[][] {
  const parts: Token[][] = [[]];
  let depth = 0;
  for (const token of tokens) {
    if (token.text === '(') depth += 1;
    if (token.text === ')') depth -= 1;
    if (token.text === ',' && depth === 0) parts.push([]);
    else parts[parts.length - 1]?.push(token);
  }
  return parts.filter((part) => part.length > 0);
}
