/**
 * What a statement does, in terms the rules care about. Both parsers (libpg-query for
 * PostgreSQL, the token-level one for SQLite and MySQL) produce these, so each rule is
 * written once for every dialect. Table names are normalised: unquoted and lower case, and
 * PostgreSQL's default `public.` schema dropped.
 */
export type Operation =
  | { kind: 'begin' }
  /** COMMIT or ROLLBACK: the transaction ends either way. */
  | { kind: 'commit' }
  /** SET / RESET of the lock wait limit (`lock_timeout`, MySQL `lock_wait_timeout`). */
  | {
      kind: 'set-lock-timeout';
      value: 'disabled' | 'limited' | 'reset';
      local: boolean;
      /** The limit when `value` is `limited` and the SQL states it as a constant. */
      milliseconds: number | null;
    }
  | { kind: 'create-table'; table: string }
  | { kind: 'drop-table'; table: string }
  | { kind: 'rename-table'; table: string; newName: string }
  /** Alembic batch mode's copy-and-swap of a whole table (see batch-rebuild.ts). */
  | { kind: 'table-rebuild'; table: string; renamedColumns: Array<[from: string, to: string]> }
  | {
      kind: 'add-column';
      table: string;
      column: string;
      notNull: boolean;
      default: ColumnDefault;
      /** identity or serial/auto-increment: every existing row gets a value from a sequence. */
      generated: 'identity' | 'serial' | 'stored' | null;
      /** PostgreSQL: the declared type, remembered for a later ALTER COLUMN ... TYPE. */
      type?: ColumnType;
    }
  | { kind: 'drop-column'; table: string; column: string }
  | { kind: 'rename-column'; table: string; column: string; newName: string }
  /** A new type, or (MySQL MODIFY/CHANGE) a full column redefinition. */
  | {
      kind: 'alter-column-type';
      table: string;
      column: string;
      online: boolean;
      /** PostgreSQL: the new type and whether a USING expression converts the values. */
      newType?: ColumnType;
      using?: boolean;
    }
  | { kind: 'set-not-null'; table: string; column: string }
  | {
      kind: 'add-constraint';
      table: string;
      name: string | null;
      type: 'foreign-key' | 'check' | 'unique' | 'primary-key' | 'exclusion' | 'other';
      /** False for `NOT VALID`: existing rows are not checked now. */
      validated: boolean;
      /** `UNIQUE / PRIMARY KEY USING INDEX`: adopts an index built beforehand. */
      usingIndex: boolean;
      /** For `CHECK (col IS NOT NULL)`: the column it proves non-null once validated. */
      notNullColumn: string | null;
      /** For a foreign key: the referenced table, also locked while the key is validated. */
      referencedTable: string | null;
    }
  | { kind: 'validate-constraint'; table: string; name: string }
  | { kind: 'create-index'; table: string; name: string | null; concurrent: boolean; unique: boolean }
  | { kind: 'drop-index'; name: string; table: string | null; concurrent: boolean }
  | { kind: 'reindex'; target: string; table: string | null; concurrent: boolean }
  | { kind: 'vacuum'; table: string | null; full: boolean }
  | { kind: 'cluster'; table: string | null }
  | { kind: 'truncate'; table: string }
  | { kind: 'lock-table'; table: string }
  | {
      kind: 'data-change';
      verb: 'INSERT' | 'UPDATE' | 'DELETE' | 'MERGE' | 'COPY';
      table: string;
      /** An UPDATE or DELETE with no WHERE: it touches every row of the table. */
      allRows?: boolean;
    }
  /** Any other ALTER TABLE: still takes a lock on the table. */
  | { kind: 'alter-table-other'; table: string; online: boolean }
  /** Anything the rules have no opinion on (SELECT, COMMENT, CREATE FUNCTION, ...). */
  | { kind: 'other' };

/**
 * A column type as far as a type change is concerned: the base name as PostgreSQL spells it
 * internally (`varchar`, `text`, `int4`, `numeric`, ...) and the length of a `varchar(n)`
 * (null when unbounded or not a length).
 */
export interface ColumnType {
  name: string;
  length: number | null;
}

/**
 * A column default as far as rewriting the table is concerned. Since PostgreSQL 11 a
 * non-volatile default is stored once in the catalog; a volatile one is computed per row.
 */
export type ColumnDefault =
  | { kind: 'none' }
  | { kind: 'constant' }
  | { kind: 'stable'; text: string }
  | { kind: 'volatile'; text: string }
  /** A call to a function whose volatility cannot be known without the database. */
  | { kind: 'unknown'; text: string };

/** A statement of the pending SQL with what it does. */
export interface ParsedStatement {
  text: string;
  operations: Operation[];
  /** Set when the parser could not read the statement; the rules then skip it. */
  parseError?: string;
}

/** Normalises an identifier as written in SQL: unquoted, lower case unless it was quoted. */
export function normaliseName(name: string): string {
  const parts = name.split('.').map((part) => {
    const quoted = /^(["`[])(.*)["`\]]$/.exec(part.trim());
    return quoted ? (quoted[2] ?? '') : part.trim().toLowerCase();
  });
  if (parts.length > 1 && parts[0] === 'public') parts.shift();
  return parts.join('.');
}
