/**
 * Splits SQL text into statements at top-level semicolons. Knows just enough of the lexical
 * rules of PostgreSQL, MySQL and SQLite not to split inside string literals, quoted
 * identifiers, dollar-quoted bodies (`DO $$ ... $$`) and comments. Comments are kept inside
 * the statement that follows them, so a statement's text is what the database receives.
 */

/** One statement as written, without its terminating semicolon. */
export interface SqlStatement {
  text: string;
  /** Offset of the statement's first non-blank character in the input. */
  offset: number;
}

export interface SplitOptions {
  /** MySQL: backslash escapes inside string literals and backtick-quoted identifiers. */
  mysql?: boolean;
}

export function splitSqlStatements(sql: string, options: SplitOptions = {}): SqlStatement[] {
  const statements: SqlStatement[] = [];
  let start = 0;
  let index = 0;
  const push = (end: number): void => {
    const piece = sql.slice(start, end);
    const text = stripLeadingComments(piece).trim();
    if (text !== '') statements.push({ text, offset: start + piece.indexOf(text) });
  };
  while (index < sql.length) {
    const char = sql[index];
    const next = sql[index + 1];
    if (char === ';') {
      push(index);
      start = index + 1;
      index += 1;
    } else if (char === '-' && next === '-') {
      index = endOf(sql, '\n', index + 2);
    } else if (char === '#' && options.mysql) {
      index = endOf(sql, '\n', index + 1);
    } else if (char === '/' && next === '*') {
      index = endOf(sql, '*/', index + 2);
    } else if (char === "'" || char === '"' || (char === '`' && options.mysql)) {
      index = endOfQuoted(sql, index, char, options.mysql === true && char !== '`');
    } else if (char === '$' && !options.mysql) {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(index));
      index = tag && !isIdentifierChar(sql[index - 1]) ? endOf(sql, tag[0], index + tag[0].length) : index + 1;
    } else {
      index += 1;
    }
  }
  push(sql.length);
  return statements;
}

/** Drops `--` line comments and blank lines that precede a statement's first token. */
function stripLeadingComments(text: string): string {
  let rest = text;
  for (;;) {
    const trimmed = rest.trimStart();
    if (trimmed.startsWith('--')) {
      const newline = trimmed.indexOf('\n');
      rest = newline === -1 ? '' : trimmed.slice(newline + 1);
    } else {
      return trimmed;
    }
  }
}

function endOf(sql: string, terminator: string, from: number): number {
  const at = sql.indexOf(terminator, from);
  return at === -1 ? sql.length : at + terminator.length;
}

function endOfQuoted(sql: string, open: number, quote: string, backslashEscapes: boolean): number {
  let index = open + 1;
  while (index < sql.length) {
    const char = sql[index];
    if (backslashEscapes && char === '\\') {
      index += 2;
    } else if (char === quote) {
      if (sql[index + 1] !== quote) return index + 1;
      index += 2; // a doubled quote stands for itself
    } else {
      index += 1;
    }
  }
  return sql.length;
}

function isIdentifierChar(char: string | undefined): boolean {
  return char !== undefined && /[A-Za-z0-9_]/.test(char);
}
