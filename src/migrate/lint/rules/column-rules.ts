/** Rules about adding columns: what the new column does to existing rows and to old code. */
import type { Rule } from './rule.js';
import { ALL_DIALECTS } from './rule.js';

export const notNullWithoutDefault: Rule = {
  id: 'not-null-without-default',
  severity: 'error',
  title: 'ADD COLUMN ... NOT NULL without a default',
  dialects: ALL_DIALECTS,
  safeAlternative: {
    default:
      'Give the column a constant `server_default` (instant on PostgreSQL 11+ and MySQL 8), or add it nullable, ' +
      'backfill it, and make it NOT NULL in a later release.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'add-column' || !operation.notNull) return null;
    if (operation.default.kind !== 'none' || operation.generated !== null || !state.isLive(operation.table)) return null;
    const column = `${operation.table}.${operation.column}`;
    return {
      message:
        `ADD COLUMN ${column} NOT NULL without a default: it fails if the table has rows, and once it exists the running release's ` +
        'INSERTs, which do not name the column, fail.',
    };
  },
};

export const volatileDefault: Rule = {
  id: 'volatile-default',
  severity: 'error',
  title: 'ADD COLUMN with a volatile default, serial, identity or stored generated column',
  dialects: ['postgresql', 'mysql'],
  safeAlternative: {
    default:
      'Add the column with no default (or a constant one), then `ALTER COLUMN ... SET DEFAULT ...` for new rows ' +
      '(instant), then backfill existing rows in batches outside the DDL transaction.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'add-column' || !state.isLive(operation.table)) return null;
    const column = `${operation.table}.${operation.column}`;
    const rewrite = `the whole of ${operation.table} is rewritten under an ACCESS EXCLUSIVE lock`;
    if (operation.generated === 'serial' || operation.generated === 'identity') {
      return { message: `ADD COLUMN ${column} as ${operation.generated} fills every existing row from a sequence: ${rewrite}.` };
    }
    if (operation.generated === 'stored') {
      return { message: `ADD COLUMN ${column} as a stored generated column computes every existing row: ${rewrite}.` };
    }
    if (operation.default.kind === 'volatile') {
      return { message: `ADD COLUMN ${column} with the volatile default ${operation.default.text} computes it per row: ${rewrite}.` };
    }
    if (operation.default.kind === 'unknown') {
      return {
        severity: 'warning',
        message:
          `ADD COLUMN ${column} has the default ${operation.default.text}, whose volatility cannot be known offline: ` +
          `if it is volatile, ${rewrite}.`,
      };
    }
    return null;
  },
};
