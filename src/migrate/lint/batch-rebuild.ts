/**
 * Alembic's batch mode (`op.batch_alter_table`, required for most changes on SQLite) applies
 * a change by rebuilding the table ("move and copy"):
 *
 *     CREATE TABLE _alembic_tmp_x (...);
 *     INSERT INTO _alembic_tmp_x (...) SELECT ... FROM x;
 *     DROP TABLE x;
 *     ALTER TABLE _alembic_tmp_x RENAME TO x;
 *
 * Read statement by statement that is a drop and a rename of a live table; it is one thing,
 * a full copy of the table under the write lock, and is reported as one `table-rebuild`.
 */
import type { Operation, ParsedStatement } from './operations.js';

const TEMP_PREFIX = '_alembic_tmp_';

export function collapseBatchRebuilds(statements: ParsedStatement[]): ParsedStatement[] {
  const result = [...statements];
  for (let start = 0; start < result.length; start += 1) {
    const created = only(result[start], 'create-table');
    if (!created?.table.startsWith(TEMP_PREFIX)) continue;
    const temp = created.table;
    const table = temp.slice(TEMP_PREFIX.length);
    const copy = findAfter(result, start, (op) => op.kind === 'data-change' && op.verb === 'INSERT' && op.table === temp);
    const drop = findAfter(result, copy, (op) => op.kind === 'drop-table' && op.table === table);
    const swap = findAfter(result, drop, (op) => op.kind === 'rename-table' && op.table === temp && op.newName === table);
    if (copy === -1 || drop === -1 || swap === -1) continue;
    const parts = [start, copy, drop, swap].map((index) => result[index]?.text ?? '');
    const rebuild: ParsedStatement = {
      text: parts.join(';\n') + ';',
      operations: [{ kind: 'table-rebuild', table, renamedColumns: renamedColumns(parts[1] ?? '') }],
    };
    for (const index of [swap, drop, copy]) result.splice(index, 1);
    result[start] = rebuild;
  }
  return result;
}

function only<K extends Operation['kind']>(
  statement: ParsedStatement | undefined,
  kind: K,
): Extract<Operation, { kind: K }> | undefined {
  const operation = statement?.operations.length === 1 ? statement.operations[0] : undefined;
  return operation?.kind === kind ? (operation as Extract<Operation, { kind: K }>) : undefined;
}

function findAfter(statements: ParsedStatement[], after: number, test: (operation: Operation) => boolean): number {
  if (after === -1) return -1;
  return statements.findIndex((statement, index) => index > after && statement.operations.some(test));
}

/**
 * Columns copied under another name: `INSERT INTO _alembic_tmp_x (id, points) SELECT x.id,
 * x.score FROM x` renames score to points.
 */
function renamedColumns(copy: string): Array<[string, string]> {
  const match = /\(([^)]*)\)\s*SELECT\s+([\s\S]*?)\s+FROM\s/i.exec(copy);
  if (!match) return [];
  const targets = (match[1] ?? '').split(',').map((name) => unquote(name));
  const sources = (match[2] ?? '').split(',').map((item) => item.trim());
  const renames: Array<[string, string]> = [];
  targets.forEach((target, index) => {
    const source = /^(?:[\w"`]+\.)?([\w"`]+)$/.exec(sources[index] ?? '');
    const from = source ? unquote(source[1] ?? '') : null;
    if (from !== null && from !== target) renames.push([from, target]);
  });
  return renames;
}

function unquote(name: string): string {
  return name.trim().replace(/^["`](.*)["`]$/, '$1');
}
