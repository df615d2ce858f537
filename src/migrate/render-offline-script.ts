/**
 * Python run on the host in place of `alembic` for `upgrade --sql`: the same command line
 * (arguments after the script are Alembic's own), with two changes so one revision that
 * cannot render offline does not hide every other one from the lint:
 *
 * - each revision's `upgrade()` is guarded: when it raises (it reads rows through
 *   `op.get_bind()`, which offline mode cannot answer, ...), a marker line
 *   `-- graceful-deploy: cannot render <rev>: <Error>: <message>` takes the place of the rest
 *   of its SQL and Alembic carries on with the next revision. What the revision emitted
 *   before the failure stays in the output and is linted.
 * - the mock connection of offline mode gets the `commit()` SQLAlchemy 2 code calls
 *   (`op.get_bind().commit()`): inside an autocommit block it does nothing (nothing is open to
 *   commit); elsewhere it renders what it does on a live database, `COMMIT;` then a new
 *   `BEGIN;` (SQLAlchemy begins again on the next statement), so the lint sees the
 *   transaction end.
 * - the mock connection gets a `url` (`op.get_bind().engine.url`, which a revision reads to
 *   branch on the database: `str(url).startswith("postgres")`): the dialect and driver the
 *   offline context was configured with and nothing else, so no credentials reach the output.
 *   Without it such a revision cannot render at all, though its SQL does not depend on data.
 *
 * When nothing fails, the output is byte for byte what `alembic upgrade --sql` prints.
 */
export const RENDER_OFFLINE_SCRIPT = `
import sys
from contextlib import contextmanager
from alembic.config import main
from alembic.runtime import migration
from sqlalchemy.engine import mock

def _context():
    from alembic import op
    return op.get_context()

def _emit(text):
    _context().impl.static_output(text)

_autocommit_depth = [0]
_plain_autocommit_block = migration.MigrationContext.autocommit_block

@contextmanager
def _autocommit_block(self):
    _autocommit_depth[0] += 1
    try:
        with _plain_autocommit_block(self):
            yield
    finally:
        _autocommit_depth[0] -= 1

migration.MigrationContext.autocommit_block = _autocommit_block

def _commit(self):
    impl = _context().impl
    if _autocommit_depth[0] == 0 and impl.transactional_ddl:
        impl.emit_commit()
        impl.emit_begin()

mock.MockConnection.commit = _commit

def _url(self):
    from sqlalchemy.engine.url import make_url
    return make_url("%s+%s://" % (self.dialect.name, self.dialect.driver))

if not hasattr(mock.MockConnection, "url"):
    mock.MockConnection.url = property(_url)

_plain_step_init = migration.RevisionStep.__init__

def _step_init(self, *args, **kwargs):
    _plain_step_init(self, *args, **kwargs)
    upgrade = self.migration_fn
    revision = self.revision.revision

    def guarded(**kw):
        try:
            return upgrade(**kw)
        except Exception as error:
            reason = " ".join(("%s: %s" % (type(error).__name__, error)).split())
            _emit("-- graceful-deploy: cannot render %s: %s" % (revision, reason))

    guarded.__name__ = getattr(upgrade, "__name__", "upgrade")
    self.migration_fn = guarded

migration.RevisionStep.__init__ = _step_init
main(argv=sys.argv[1:], prog="alembic")
`.trim();
