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
  /**
   * Why the revision's `upgrade()` could not run offline (the marker the render script writes,
   * see render-offline-script.ts), or null. Its SQL up to the failure is still in `sql`.
   */
  renderError: string | null;
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
const RENDER_ERROR = /^-- graceful-deploy: cannot render (\S+): (.*)$/m;

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
      renderError: null,
    };
  });
  for (const chunk of revisions) {
    const marker = RENDER_ERROR.exec(chunk.sql);
    if (marker?.[1] !== chunk.revision) continue;
    chunk.renderError = marker[2] ?? '';
    chunk.sql = chunk.sql.replace(RENDER_ERROR, '');
  }

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

/**
 * True when the rendered SQL holds nothing for the head: no revision at all (an `env.py` that
 * does nothing in offline mode prints no SQL and exits 0) or a range that stops short.
 */
export function missesHead(script: OfflineScript, head: string): boolean {
  return !script.revisions.some((chunk) => chunk.revision === head);
}

/**
 * Alembic's exception, in words: offline mode hands a migration a mock connection whose
 * `execute()` returns None, so reading the result fails with an AttributeError on None.
 */
export function renderErrorReason(error: string): string {
  const read = /'NoneType' object (?:has no attribute '(\w+)'|is not (?:iterable|subscriptable))/.exec(error);
  if (read) {
    const how = read[1] ? `.${read[1]}()` : 'its rows';
    return `it reads data from the database (op.get_bind().execute(...) then ${how}), which offline mode cannot answer (${error})`;
  }
  return `its upgrade() raised ${error}`;
}
