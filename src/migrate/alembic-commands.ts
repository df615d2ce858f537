/**
 * Remote command lines of the migration step, built from typed values with `sh` (which
 * quotes every interpolated value). Alembic is run as `<python> -m alembic`, with the
 * interpreter the release runs on, in the release directory, with the global options of the
 * user's migrate-command repeated.
 */
import { raw, sh, type ShellFragment } from '../remote/shell-quote.js';
import { RENDER_OFFLINE_SCRIPT } from './render-offline-script.js';

export interface AlembicTarget {
  releaseDir: string;
  /** Interpreter on the host that can import alembic and the app (e.g. the release's venv). */
  python: string;
  /** `-c`, `-n`, `-x` options from the migrate command (see alembic-invocation.ts). */
  globalArgs: readonly string[];
  /** `-c` value, or null for Alembic's default. */
  configFile: string | null;
  /** `-n` value, or null for the default section. */
  section: string | null;
}

function alembic(target: AlembicTarget, args: readonly string[]): ShellFragment {
  return sh`cd ${target.releaseDir} && ${[target.python, '-m', 'alembic', ...target.globalArgs, ...args]}`;
}

/** `alembic heads`: one line per head, `<rev> (head)`. */
export function headsCommand(target: AlembicTarget): ShellFragment {
  return alembic(target, ['heads']);
}

/** `alembic current`: connects to the database; one line per revision it is at, none when empty. */
export function currentCommand(target: AlembicTarget): ShellFragment {
  return alembic(target, ['current']);
}

/**
 * `alembic upgrade <from>:<to> --sql`: the SQL the upgrade would run, without touching the
 * database (offline mode). From an empty database (`from` null) the range is just `<to>`.
 * Run through RENDER_OFFLINE_SCRIPT, which carries on past a revision that cannot render.
 */
export function upgradeSqlCommand(target: AlembicTarget, from: string | null, to: string): ShellFragment {
  const args = [...target.globalArgs, 'upgrade', from === null ? to : `${from}:${to}`, '--sql'];
  return sh`cd ${target.releaseDir} && ${[target.python, '-c', RENDER_OFFLINE_SCRIPT, ...args]}`;
}

/**
 * Python run on the host: looks revisions up through Alembic's ScriptDirectory (so
 * `script_location` and `version_locations` resolve exactly as Alembic resolves them) and
 * prints `{"<rev>": {"path": <relative to the cwd>, "source": <file text>}}` as JSON.
 * Arguments: config file ("" = Alembic's default), ini section, then revision ids.
 */
export const REVISION_FILES_SCRIPT = `
import json, os, sys
from alembic.config import Config
from alembic.script import ScriptDirectory
config_file, section = sys.argv[1], sys.argv[2]
config = Config(config_file or os.environ.get("ALEMBIC_CONFIG", "alembic.ini"), ini_section=section)
script = ScriptDirectory.from_config(config)
result = {}
for revision_id in sys.argv[3:]:
    revision = script.get_revision(revision_id)
    if revision is None or not revision.path:
        continue
    try:
        with open(revision.path, encoding="utf-8") as handle:
            source = handle.read()
    except (OSError, UnicodeDecodeError):
        source = ""
    result[revision_id] = {"path": os.path.relpath(os.path.abspath(revision.path)), "source": source}
json.dump(result, sys.stdout)
`.trim();

export function revisionFilesCommand(target: AlembicTarget, revisions: readonly string[]): ShellFragment {
  const args = [REVISION_FILES_SCRIPT, target.configFile ?? '', target.section ?? 'alembic', ...revisions];
  return sh`cd ${target.releaseDir} && ${target.python} -c ${args}`;
}

/**
 * The user's migrate command, run once by `sh -c` in the release directory with standard
 * error merged into standard output (so the tail of a failure reads in order). With a lock
 * timeout, `-c lock_timeout=<ms>ms` is appended to PGOPTIONS (keeping what the environment
 * already had): libpq sends it at connect time, so every PostgreSQL session psycopg2 or
 * psycopg opens for the migration starts with that lock_timeout.
 */
export function migrateCommand(releaseDir: string, command: string, lockTimeoutSeconds: number): ShellFragment {
  if (lockTimeoutSeconds <= 0) return sh`cd ${releaseDir} && sh -c ${command} 2>&1`;
  const option = `-c lock_timeout=${Math.round(lockTimeoutSeconds * 1000)}ms`;
  // `"${PGOPTIONS:+$PGOPTIONS }"` is constant shell text: keep existing options, add a space.
  return sh`cd ${releaseDir} && PGOPTIONS=${raw('"${PGOPTIONS:+$PGOPTIONS }"')}${option} sh -c ${command} 2>&1`;
}
