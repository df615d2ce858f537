import { InputError } from '../errors.js';
import { Inputs } from './input-names.js';

/**
 * A deprecated input name that still works: its value is read as `current`'s, with a warning
 * naming the new input. `values` translates the old input's values into the new input's
 * vocabulary (a value mapped to null says nothing: as if the old input were unset); a value
 * not listed passes as it is, and the new input's own check judges it.
 */
export interface InputAlias {
  readonly old: string;
  readonly current: string;
  readonly values?: Readonly<Record<string, string | null>>;
  /**
   * Values of `current` that the old input's (translated) value refines rather than contradicts
   * when both are set: `migration-lint: on` with `allow-unsafe-migrations: true` was the way to
   * say `warn`. Any other disagreement is an error naming both inputs.
   */
  readonly refines?: readonly string[];
  /** Values of `current` that make the old input moot (`migration-lint: off`: nothing to allow). */
  readonly overriddenBy?: readonly string[];
}

/** Old spellings of the current inputs' values: read as the new value, with a warning. */
export interface ValueAlias {
  readonly input: string;
  readonly old: string;
  readonly current: string;
}

/**
 * Every renamed input. Add a row when an input is renamed (or when a new input replaces an
 * old switch); action.yml keeps the old name, described as deprecated, so the runner does not
 * warn about an unexpected input.
 */
export const INPUT_ALIASES: readonly InputAlias[] = [
  { old: 'drain', current: Inputs.LbDrain },
  { old: 'drain-timeout', current: Inputs.LbDrainTimeout },
  { old: 'traffic-gate-window', current: Inputs.LbTrafficGateWindow },
  { old: 'traffic-gate-max-5xx-rate', current: Inputs.LbTrafficGateMax5xxRate },
  { old: 'traffic-gate-latency-factor', current: Inputs.LbTrafficGateLatencyFactor },
  {
    old: 'allow-unsafe-migrations',
    current: Inputs.MigrationLint,
    values: { true: 'warn', yes: 'warn', on: 'warn', '1': 'warn', false: null, no: null, off: null, '0': null },
    refines: ['on'],
    overriddenBy: ['off'],
  },
];

/**
 * Every tri-state input speaks `auto | always | never`; the other words they once took still
 * work. migration-lint's `auto` became `on` (lint when the command runs Alembic).
 */
export const VALUE_ALIASES: readonly ValueAlias[] = [
  { input: Inputs.ExpectVersion, old: 'true', current: 'always' },
  { input: Inputs.ExpectVersion, old: 'false', current: 'never' },
  { input: Inputs.MigrationLint, old: 'auto', current: 'on' },
];

/** The deprecated input names, for action.yml and the terminal form's options. */
export const DEPRECATED_INPUTS: readonly string[] = INPUT_ALIASES.map((alias) => alias.old);

/**
 * Wraps an input reader so that each current name also reads its deprecated names and old
 * values, calling `warn` once per deprecated use. Both names set to values that disagree is an
 * InputError naming both: the run cannot know which one the user meant.
 */
export function withAliases(read: (name: string) => string, warn: (message: string) => void): (name: string) => string {
  const warned = new Set<string>();
  const once = (key: string, message: string) => {
    if (warned.has(key)) return;
    warned.add(key);
    warn(message);
  };
  return (name: string): string => {
    let value = read(name).trim();
    for (const alias of INPUT_ALIASES.filter((candidate) => candidate.current === name)) {
      const raw = read(alias.old).trim();
      if (!raw) continue;
      const mapped = alias.values && raw.toLowerCase() in alias.values ? alias.values[raw.toLowerCase()] : raw;
      const shown = mapped === undefined || mapped === null ? 'nothing' : `${name}: ${mapped}`;
      once(`input:${alias.old}`, `Input '${alias.old}' is deprecated: use '${name}' instead ('${alias.old}: ${raw}' means ${shown}).`);
      if (mapped === null || mapped === undefined) continue;
      const currentValue = currentOf(name, value);
      if (alias.overriddenBy?.includes(currentValue)) continue;
      if (value && currentValue !== mapped && !alias.refines?.includes(currentValue)) {
        throw new InputError(name, `'${value}' disagrees with its deprecated name '${alias.old}: ${raw}'; set only '${name}'.`);
      }
      value = mapped;
    }
    const old = VALUE_ALIASES.find((alias) => alias.input === name && alias.old === value.toLowerCase());
    if (old) {
      once(`value:${name}:${old.old}`, `'${name}: ${value}' is deprecated: write '${name}: ${old.current}'.`);
      value = old.current;
    }
    return value;
  };
}

/** A value in the input's current vocabulary (old spellings translated), for comparisons. */
function currentOf(input: string, value: string): string {
  return VALUE_ALIASES.find((alias) => alias.input === input && alias.old === value.toLowerCase())?.current ?? value;
}
