/**
 * What the lint knows while it walks the pending SQL in order: which tables this run created
 * (they are exempt from the locking rules: nobody else uses them yet), whether a transaction
 * is open and what it holds, and which lock timeout the session has.
 */
import type { Dialect } from './finding.js';
import type { ColumnType, Operation } from './operations.js';

/** A statement seen earlier in the run, to name it in a message. */
export interface SeenStatement {
  text: string;
  revision: string;
}

interface LockingStatement extends SeenStatement {
  table: string;
}

/** A data change seen earlier in the open transaction. */
export interface DataStatement extends SeenStatement {
  /** An UPDATE or DELETE with no WHERE. */
  allRows: boolean;
}

/** A `SET lock_timeout` of the migrations, with the limit it sets when the SQL states it. */
export interface LockTimeoutSetting {
  milliseconds: number | null;
  statement: SeenStatement;
}

/**
 * Where the session's lock timeout comes from at this point of the run:
 * `action`: the action's `migration-lock-timeout`, applied to the session through PGOPTIONS;
 * `sql`: a `SET lock_timeout` (`lock_wait_timeout` on MySQL) in the migrations themselves;
 * `disabled`: the migrations set it to 0, which also overrides the action's;
 * `none`: nothing sets one, so a blocked statement waits forever.
 */
export type LockTimeoutSource = 'action' | 'sql' | 'disabled' | 'none';

export class RunState {
  private readonly createdTables = new Set<string>();
  private readonly indexTables = new Map<string, string>();
  private readonly notNullChecks = new Map<string, string>();
  private readonly provenNotNull = new Set<string>();
  private readonly sessionDefault: LockTimeoutSource;
  private sessionLockTimeout: LockTimeoutSource;
  private localLockTimeout: LockTimeoutSource | null = null;
  private sessionSetting: LockTimeoutSetting | null = null;
  private localSetting: LockTimeoutSetting | null = null;
  private readonly columnTypes = new Map<string, ColumnType>();
  private transactionOpen = false;
  private transactionCount = 0;
  private transactionDdl: LockingStatement[] = [];
  private transactionData: DataStatement[] = [];

  constructor(
    readonly dialect: Dialect,
    /** The action enforces a lock timeout on the migration's session (PostgreSQL only). */
    actionLockTimeout: boolean,
  ) {
    this.sessionDefault = actionLockTimeout && dialect === 'postgresql' ? 'action' : 'none';
    this.sessionLockTimeout = this.sessionDefault;
  }

  /** The table exists before this run, i.e. other code may be using it right now. */
  isLive(table: string | null): boolean {
    return table === null || table === '' || !this.createdTables.has(table);
  }

  /** The table an index belongs to, when this run created the index or it names it. */
  tableOfIndex(name: string): string | null {
    return this.indexTables.get(name) ?? null;
  }

  /** Records the table of an index the revision's Python names (`drop_index(..., table_name=)`). */
  noteIndexTable(name: string, table: string): void {
    if (!this.indexTables.has(name)) this.indexTables.set(name, table);
  }

  get inTransaction(): boolean {
    return this.transactionOpen;
  }

  /**
   * Identifies the open transaction (or the gap between two): two statements with the same
   * id and `inTransaction` ran in one transaction.
   */
  get transactionId(): number {
    return this.transactionCount;
  }

  get lockTimeout(): LockTimeoutSource {
    return this.localLockTimeout ?? this.sessionLockTimeout;
  }

  /** The migrations' own `SET lock_timeout` in force, when `lockTimeout` is `sql`. */
  get lockTimeoutSetting(): LockTimeoutSetting | null {
    if (this.lockTimeout !== 'sql') return null;
    return this.localLockTimeout !== null ? this.localSetting : this.sessionSetting;
  }

  /** The type a column got from an earlier statement of the run (ADD COLUMN, ALTER ... TYPE). */
  columnType(table: string, column: string): ColumnType | null {
    return this.columnTypes.get(`${table}.${column}`) ?? null;
  }

  /** A validated `CHECK (column IS NOT NULL)` proves the column has no NULL. */
  isProvenNotNull(table: string, column: string): boolean {
    return this.provenNotNull.has(`${table}.${column}`);
  }

  /**
   * A statement in the open transaction that locked a live table: the first one that locked
   * `table` when there is one, else the first one.
   */
  ddlInTransaction(table?: string): (SeenStatement & { table: string }) | null {
    if (!this.transactionOpen) return null;
    return this.transactionDdl.find((ddl) => ddl.table === table) ?? this.transactionDdl[0] ?? null;
  }

  /** Data changes to live tables in the open transaction. */
  get dataInTransaction(): readonly DataStatement[] {
    return this.transactionOpen ? this.transactionData : [];
  }

  /**
   * The live table an operation locks so that application queries on it wait (writes at
   * least), or null. On MySQL every DDL statement takes an exclusive metadata lock, however
   * briefly, so every DDL on a live table counts.
   */
  lockedLiveTable(operation: Operation): string | null {
    const table = this.lockTarget(operation);
    return table !== null && this.isLive(table) ? table : null;
  }

  private lockTarget(operation: Operation): string | null {
    const mysql = this.dialect === 'mysql';
    switch (operation.kind) {
      case 'drop-table':
      case 'rename-table':
      case 'table-rebuild':
      case 'add-column':
      case 'drop-column':
      case 'rename-column':
      case 'set-not-null':
      case 'add-constraint':
      case 'truncate':
      case 'lock-table':
        return operation.table;
      case 'alter-column-type':
      case 'alter-table-other':
        return operation.online && !mysql ? null : operation.table;
      case 'create-index':
        return operation.concurrent && !mysql ? null : operation.table;
      case 'drop-index':
        return operation.concurrent ? null : (operation.table ?? this.tableOfIndex(operation.name) ?? '');
      case 'reindex':
        return operation.concurrent ? null : (operation.table ?? this.tableOfIndex(operation.target) ?? '');
      case 'vacuum':
        return operation.full ? (operation.table ?? '') : null;
      case 'cluster':
        return operation.table ?? '';
      default:
        return null;
    }
  }

  /** Records the effect of an operation once the rules have seen it. */
  apply(operation: Operation, statement: SeenStatement): void {
    const locked = this.lockedLiveTable(operation);
    switch (operation.kind) {
      case 'begin':
        this.transactionOpen = true;
        this.transactionCount += 1;
        break;
      case 'commit':
        this.transactionOpen = false;
        this.transactionCount += 1;
        this.transactionDdl = [];
        this.transactionData = [];
        this.localLockTimeout = null;
        break;
      case 'set-lock-timeout': {
        const source: LockTimeoutSource =
          operation.value === 'reset' ? this.sessionDefault : operation.value === 'disabled' ? 'disabled' : 'sql';
        const setting = source === 'sql' ? { milliseconds: operation.milliseconds, statement } : null;
        if (!operation.local) {
          this.sessionLockTimeout = source;
          this.sessionSetting = setting;
          this.localLockTimeout = null; // a plain SET also replaces an earlier SET LOCAL
        } else if (this.transactionOpen) {
          this.localLockTimeout = source; // outside a transaction SET LOCAL does nothing
          this.localSetting = setting;
        }
        break;
      }
      case 'add-column':
        if (operation.type) this.columnTypes.set(`${operation.table}.${operation.column}`, operation.type);
        break;
      case 'alter-column-type':
        if (operation.newType) this.columnTypes.set(`${operation.table}.${operation.column}`, operation.newType);
        break;
      case 'create-table':
        this.createdTables.add(operation.table);
        break;
      case 'drop-table':
        this.createdTables.delete(operation.table);
        break;
      case 'rename-table':
        if (this.createdTables.delete(operation.table)) this.createdTables.add(operation.newName);
        break;
      case 'create-index':
        if (operation.name) this.indexTables.set(operation.name, operation.table);
        break;
      case 'add-constraint':
        if (operation.notNullColumn && operation.name) {
          this.notNullChecks.set(`${operation.table}.${operation.name}`, operation.notNullColumn);
          if (operation.validated) this.provenNotNull.add(`${operation.table}.${operation.notNullColumn}`);
        }
        break;
      case 'validate-constraint': {
        const column = this.notNullChecks.get(`${operation.table}.${operation.name}`);
        if (column) this.provenNotNull.add(`${operation.table}.${column}`);
        break;
      }
      case 'data-change':
        if (this.transactionOpen && this.isLive(operation.table)) {
          this.transactionData.push({ ...statement, allRows: operation.allRows === true });
        }
        break;
      default:
        break;
    }
    if (locked !== null && this.transactionOpen) this.transactionDdl.push({ ...statement, table: locked });
  }
}
