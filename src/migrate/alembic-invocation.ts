/**
 * Reads the user's `migrate-command` to find out whether it runs Alembic and with which
 * global options, so the step's own Alembic commands (heads, current, upgrade --sql) look at
 * the same configuration: `-c/--config`, `-n/--name` and `-x` are repeated on each of them.
 * Flask-Migrate (`flask db upgrade`) runs Alembic through the Flask app, with its own
 * configuration, and Django's `manage.py migrate` is not Alembic: neither is recognised, so
 * neither is linted (the command runs as it is).
 */
import { MigrationError } from './migration-errors.js';
import type { MigrationLintMode } from './migration-settings.js';

export interface AlembicInvocation {
  /** Global options in the order given, ready to pass as arguments. */
  globalArgs: string[];
  /** `-c` value, or null for Alembic's default (`$ALEMBIC_CONFIG`, else `alembic.ini`). */
  configFile: string | null;
  /** `-n` value: the ini section, or null for `alembic`. */
  section: string | null;
}

/**
 * Resolves `migration-lint`: `on` and `warn` lint when the migrate command runs Alembic (a
 * command that does not name it, such as a wrapper script, `flask db upgrade` or `manage.py
 * migrate`, runs unlinted); `off` never lints.
 */
export function isLintEnabled(mode: MigrationLintMode, migrateCommand: string): boolean {
  return mode !== 'off' && parseAlembicInvocation(migrateCommand) !== null;
}

const OPTIONS_WITH_VALUE: Record<string, 'config' | 'name' | 'x'> = {
  '-c': 'config',
  '--config': 'config',
  '-n': 'name',
  '--name': 'name',
  '-x': 'x',
};

/**
 * The Alembic invocation in a shell command line (`alembic ...`, `.venv/bin/alembic ...`,
 * `python -m alembic ...`), or null when there is none. Throws when an option we would have
 * to repeat is computed by the shell (`-c "$CONFIG"`): its value cannot be known here.
 */
export function parseAlembicInvocation(command: string): AlembicInvocation | null {
  const words = shellWords(command);
  const start = words.findIndex(
    (word, index) =>
      word.text.split('/').pop() === 'alembic' &&
      (index === 0 || words[index - 1]?.text !== '-m' || /python/.test(words[index - 2]?.text ?? '')),
  );
  if (start === -1) return null;
  const invocation: AlembicInvocation = { globalArgs: [], configFile: null, section: null };
  for (let index = start + 1; index < words.length; index += 1) {
    const word = words[index];
    if (!word || word.operator || !word.text.startsWith('-')) break;
    const [flag = '', inlineValue] = word.text.startsWith('--') ? word.text.split(/=(.*)/s) : [word.text];
    const kind = OPTIONS_WITH_VALUE[flag];
    if (kind === undefined) continue; // flags such as --raiseerr change nothing for us
    const valueWord = inlineValue !== undefined ? word : words[(index += 1)];
    const value = inlineValue ?? valueWord?.text;
    if (value === undefined || valueWord?.operator) break;
    if (valueWord?.expands) {
      throw new MigrationError(
        `migrate-command passes alembic '${flag}' a value the shell computes; the migration lint cannot repeat it. ` +
          "Write the value literally, or set 'migration-lint: off'.",
      );
    }
    invocation.globalArgs.push(flag, value);
    if (kind === 'config') invocation.configFile = value;
    if (kind === 'name') invocation.section = value;
  }
  return invocation;
}

interface ShellWord {
  text: string;
  /** `;`, `&&`, `||`, `|`, `&`: ends a simple command. */
  operator: boolean;
  /** Contains an unquoted or double-quoted `$` or backtick. */
  expands: boolean;
}

/** POSIX-ish word splitting: quotes, backslashes, and control operators. */
function shellWords(command: string): ShellWord[] {
  const words: ShellWord[] = [];
  let current: ShellWord | null = null;
  const word = (): ShellWord => (current ??= { text: '', operator: false, expands: false });
  const finish = (): void => {
    if (current) words.push(current);
    current = null;
  };
  for (let index = 0; index < command.length; index += 1) {
    const char = command[index] ?? '';
    if (/\s/.test(char)) {
      finish();
    } else if (/[;&|]/.test(char)) {
      finish();
      const double = command[index + 1] === char && char !== ';';
      words.push({ text: double ? char + char : char, operator: true, expands: false });
      if (double) index += 1;
    } else if (char === "'") {
      const end = command.indexOf("'", index + 1);
      word().text += command.slice(index + 1, end === -1 ? undefined : end);
      index = end === -1 ? command.length : end;
    } else if (char === '"') {
      const target = word();
      for (index += 1; index < command.length && command[index] !== '"'; index += 1) {
        if (command[index] === '\\' && /["\\$`]/.test(command[index + 1] ?? '')) index += 1;
        else if (/[$`]/.test(command[index] ?? '')) target.expands = true;
        target.text += command[index] ?? '';
      }
    } else if (char === '\\') {
      index += 1;
      word().text += command[index] ?? '';
    } else {
      if (/[$`]/.test(char)) word().expands = true;
      word().text += char;
    }
  }
  finish();
  return words;
}
