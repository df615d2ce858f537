/**
 * Reads the output of `alembic upgrade <from>:<to> --sql` (standard output only: Alembic's
 * log lines go to standard error). Each revision's SQL follows a comment Alembic writes
 * itself, `-- Running upgrade <down>[, <down>...] -> <revision>` (the down list is empty when
 * upgrading from an empty database, and has several entries for a merge revision).
 */

/** The SQL one revision emits. */
export interface RevisionChunk {
  revision: string;
  /** The revisions this one upgrades from: empty for the first revision, several for a merge. */
  downRevisions: string[];
  sql: string;
}

export interface OfflineScript {
  /**
   * What Alembic writes before the first revision: the opening `BEGIN;` of a run-wide
   * transaction and, from an empty database, `CREATE TABLE alembic_version`.
   */
  preamble: string;
  revisions: RevisionChunk[];
}

const HEADER = /^-- Running upgrade (.*) -> (\S+)[ \t]*$/gm;
/**
 * With `transaction_per_migration`, Alembic writes the `BEGIN;` of a revision *before* that
 * revision's header comment, so it ends the previous chunk (or the preamble). Moving it
 * after the header gives each chunk the SQL that really runs for its revision.
 */
const TRAILING_BEGIN = /(?:^|\n)BEGIN;\s*$/;

export function splitOfflineSql(output: string): OfflineScript {
  const text = output.replace(/\r\n/g, '\n');
  const headers = [...text.matchAll(HEADER)];
  let preamble = text.slice(0, headers[0]?.index ?? text.length);
  const revisions: RevisionChunk[] = headers.map((header, index) => {
    const bodyStart = header.index + header[0].length;
    const bodyEnd = headers[index + 1]?.index ?? text.length;
    return {
      revision: header[2] ?? '',
      downRevisions: (header[1] ?? '')
        .split(',')
        .map((id) => id.trim())
        .filter((id) => id !== ''),
      sql: text.slice(bodyStart, bodyEnd),
    };
  });

  let carried = false;
  const moveTrailingBegin = (sql: string): string => {
    carried = TRAILING_BEGIN.test(sql);
    return carried ? sql.replace(TRAILING_BEGIN, '\n') : sql;
  };
  if (revisions.length > 0) preamble = moveTrailingBegin(preamble);
  revisions.forEach((chunk, index) => {
    const body = carried ? `BEGIN;\n${chunk.sql}` : chunk.sql;
    chunk.sql = (index < revisions.length - 1 ? moveTrailingBegin(body) : body).trim();
  });
  return { preamble: preamble.trim(), revisions };
}
