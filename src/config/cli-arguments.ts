import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { DEPRECATED_INPUTS } from './input-aliases.js';
import { Inputs } from './input-names.js';

/** Every input, deprecated names included (parseSettings warns about those). */
const NAMES = new Set<string>([...Object.values(Inputs), ...DEPRECATED_INPUTS]);

/**
 * The terminal form of the action (`node dist/index.js --hosts web1 --mode plan ...`): turns
 * `--<input> value` / `--<input>=value` into the INPUT_* variables the runner would set, so
 * a deploy can be planned or rehearsed locally with the very same engine. A value starting
 * with `@` is read from that file (`--ssh-key @~/.ssh/deploy_key`).
 */
export function cliInputs(argv: string[], home = process.env.HOME ?? ''): Record<string, string> {
  const variables: Record<string, string> = {};
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index] ?? '';
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!match?.[1] || !NAMES.has(match[1])) {
      throw new InputError(arg, `unknown option. Options are the action's inputs: ${[...NAMES].map((name) => `--${name}`).join(' ')}`);
    }
    let value = match[2];
    if (value === undefined) {
      value = argv[index + 1];
      if (value === undefined) throw new InputError(match[1], 'needs a value.');
      index += 1;
    }
    if (value.startsWith('@')) value = readFileSync(value.slice(1).replace(/^~(?=\/)/, home), 'utf8');
    variables[`INPUT_${match[1].toUpperCase()}`] = value;
  }
  return variables;
}

export const CLI_USAGE = `usage: node dist/index.js --hosts HOSTS [--<input> VALUE | --<input>=VALUE | --<input> @FILE] ...
Runs graceful-deploy from a terminal with the action's inputs (see README). Try --mode plan first.`;
