/**
 * Rules about the release that is still running: during a rolling deploy the old code keeps
 * serving until each host reloads, against the schema the migration already changed.
 */
import { allowanceComment } from '../../allowances.js';
import type { Rule } from './rule.js';
import { ALL_DIALECTS } from './rule.js';

/** The exact line that accepts a drop, once the release before this one no longer uses the object. */
function allowOnceUnused(rule: string, object: string): string {
  return (
    ` Once the running release no longer uses ${object}, add this line to the revision: ` +
    `\`${allowanceComment(rule, `${object} unused since <release>`)}\`.`
  );
}

const CONTRACT_LATER =
  'Expand and contract: first release code that no longer uses it (SQLAlchemy: remove it from the model), then ' +
  'remove it in a later release, allowing this rule on that revision with the reason.';

export const dropColumn: Rule = {
  id: 'drop-column',
  severity: 'error',
  title: 'DROP COLUMN',
  dialects: ALL_DIALECTS,
  safeAlternative: { default: CONTRACT_LATER },
  check(operation, { state }) {
    if (operation.kind !== 'drop-column' || !state.isLive(operation.table)) return null;
    return {
      message:
        `DROP COLUMN ${operation.table}.${operation.column}: hosts still running the old release select or insert ` +
        'it until they reload, and those queries fail.' +
        allowOnceUnused('drop-column', `${operation.table}.${operation.column}`),
    };
  },
};

export const dropTable: Rule = {
  id: 'drop-table',
  severity: 'error',
  title: 'DROP TABLE',
  dialects: ALL_DIALECTS,
  safeAlternative: { default: CONTRACT_LATER },
  check(operation, { state }) {
    if (operation.kind !== 'drop-table' || !state.isLive(operation.table)) return null;
    return {
      message:
        `DROP TABLE ${operation.table}: the old release still queries it until every host has reloaded.` +
        allowOnceUnused('drop-table', operation.table),
    };
  },
};

export const renameColumn: Rule = {
  id: 'rename-column',
  severity: 'error',
  title: 'RENAME COLUMN (MySQL: CHANGE old new)',
  dialects: ALL_DIALECTS,
  safeAlternative: {
    default:
      'Add the new column, write to both, backfill, move reads to the new one, and drop the old one in a later ' +
      'release (or map the model attribute to the old column name and never rename).',
  },
  check(operation, { state }) {
    if (operation.kind !== 'rename-column' || !state.isLive(operation.table)) return null;
    return {
      message:
        `RENAME COLUMN ${operation.table}.${operation.column} to ${operation.newName}: the old release still uses ` +
        `${operation.column} until its host reloads, and those queries fail.`,
    };
  },
};

export const renameTable: Rule = {
  id: 'rename-table',
  severity: 'error',
  title: 'RENAME TABLE',
  dialects: ALL_DIALECTS,
  safeAlternative: {
    default:
      'Rename, then create a view with the old name (`CREATE VIEW old AS SELECT * FROM new`; simple views are ' +
      'updatable on PostgreSQL and MySQL) for the old release, and drop the view in a later release.',
  },
  check(operation, { state }) {
    if (operation.kind !== 'rename-table' || !state.isLive(operation.table)) return null;
    return {
      message: `RENAME TABLE ${operation.table} to ${operation.newName}: the old release still queries ${operation.table} until its host reloads.`,
    };
  },
};
