/**
 * What the lint knows while it walks the pending SQL in order: which tables this run created
 * (they are exempt from the locking rules: nobody else uses them yet), whether a transaction
 * is open and what it holds, and which lock timeout the session has.
 */
import type { Dialect } from './finding.js';
import type { Operation } from './operations.js';

/** A statement seen earlier in the run, to name it in a message. */
export interface SeenStatement {
  text: string;
  revision: string;
}

interface LockingStatement extends SeenStatement {
  table: string;
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
  private transactionOpen = false;
  private transactionDdl: LockingStatement[] = [];
  private transactionData: SeenStatement[] = [];

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

  get inTransaction(): boolean {
    return this.transactionOpen;
  }

  get lockTimeout(): LockTimeoutSource {
    return this.localLockTimeout ?? this.sessionLockTimeout;
  }

  /** A validated `CHECK (column IS NOT NULL)` proves the column has no NULL. */
  isProvenNotNull(table: string, column: string): boolean {
    return this.provenNotNull.has(`${table}.${column}`);
  }

  /**
   * A statement in the open transaction that locked a live table: the first one that locked
   * `table` when there is one, else the first one.
   */
  ddlInTransaction(table?: string): SeenStatement | null {
    if (!this.transactionOpen) return null;
    return this.transactionDdl.find((ddl) => ddl.table === table) ?? this.transactionDdl[0] ?? null;
  }

  /** Data changes to live tables in the open transaction. */
  get dataInTransaction(): readonly SeenStatement[] {
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
        break;
      case 'commit':
        this.transactionOpen = false;
        this.transactionDdl = [];
        this.transactionData = [];
        this.localLockTimeout = null;
        break;
      case 'set-lock-timeout': {
        const source: LockTimeoutSource =
          operation.value === 'reset' ? this.sessionDefault : operation.value === 'disabled' ? 'disabled' : 'sql';
        if (!operation.local) {
          this.sessionLockTimeout = source;
          this.localLockTimeout = null; // a plain SET also replaces an earlier SET LOCAL
        } else if (this.transactionOpen) {
          this.localLockTimeout = source; // outside a transaction SET LOCAL does nothing
        }
        break;
      }
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
        if (this.transactionOpen && this.isLive(operation.table)) this.transactionData.push(statement);
        break;
      default:
        break;
    }
    if (locked !== null && this.transactionOpen) this.transactionDdl.push({ ...statement, table: locked });
  }
}
