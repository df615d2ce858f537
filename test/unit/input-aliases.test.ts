import { describe, expect, it } from 'vitest';
import { DEPRECATED_INPUTS, INPUT_ALIASES, VALUE_ALIASES, withAliases } from '../../src/config/input-aliases.js';
import { parseSettings } from '../../src/config/input-helper.js';
import { Inputs } from '../../src/config/input-names.js';

const CURRENT = new Set<string>(Object.values(Inputs));

/** A reader over a map, and the warnings it gave. */
function reading(inputs: Record<string, string>) {
  const warnings: string[] = [];
  const read = withAliases((name) => inputs[name] ?? '', (message) => warnings.push(message));
  return { read, warnings };
}

describe('the alias table', () => {
  it('maps each deprecated name to a current input, once, and no deprecated name is still current', () => {
    for (const alias of INPUT_ALIASES) {
      expect(CURRENT.has(alias.current), alias.current).toBe(true);
      expect(CURRENT.has(alias.old), alias.old).toBe(false);
    }
    expect(new Set(DEPRECATED_INPUTS).size).toBe(DEPRECATED_INPUTS.length);
    for (const alias of VALUE_ALIASES) expect(CURRENT.has(alias.input), alias.input).toBe(true);
  });

  it('gives every balancer input the lb- prefix', () => {
    for (const alias of INPUT_ALIASES.filter((candidate) => /drain|traffic-gate/.test(candidate.old))) expect(alias.current).toMatch(/^lb-/);
    const balancer = Object.entries(Inputs).filter(([key]) => key.startsWith('Lb'));
    for (const [, name] of balancer) expect(name).toMatch(/^lb(-|$)/);
  });
});

describe('withAliases', () => {
  it('reads a deprecated name as its new input, warning once, naming the new input', () => {
    const { read, warnings } = reading({ drain: 'always' });
    expect(read('lb-drain')).toBe('always');
    expect(read('lb-drain')).toBe('always');
    expect(warnings).toEqual(["Input 'drain' is deprecated: use 'lb-drain' instead ('drain: always' means lb-drain: always)."]);
  });

  it('takes both names when they agree, and refuses them when they do not', () => {
    expect(reading({ drain: 'never', 'lb-drain': 'never' }).read('lb-drain')).toBe('never');
    expect(() => reading({ drain: 'never', 'lb-drain': 'always' }).read('lb-drain')).toThrow(
      "Invalid input 'lb-drain': 'always' disagrees with its deprecated name 'drain: never'; set only 'lb-drain'.",
    );
  });

  it('leaves inputs without an alias, and unset ones, alone', () => {
    const { read, warnings } = reading({ hosts: ' web1 ' });
    expect(read('hosts')).toBe('web1');
    expect(read('lb-drain-timeout')).toBe('');
    expect(warnings).toEqual([]);
  });

  it('turns allow-unsafe-migrations into migration-lint: warn, unless the lint is off', () => {
    expect(reading({ 'allow-unsafe-migrations': 'true' }).read('migration-lint')).toBe('warn');
    // The old way to say warn was both inputs: `on` refined by the switch.
    expect(reading({ 'allow-unsafe-migrations': 'true', 'migration-lint': 'on' }).read('migration-lint')).toBe('warn');
    expect(reading({ 'allow-unsafe-migrations': 'true', 'migration-lint': 'auto' }).read('migration-lint')).toBe('warn');
    expect(reading({ 'allow-unsafe-migrations': 'true', 'migration-lint': 'off' }).read('migration-lint')).toBe('off');
    const off = reading({ 'allow-unsafe-migrations': 'false' });
    expect(off.read('migration-lint')).toBe('');
    expect(off.warnings).toEqual(["Input 'allow-unsafe-migrations' is deprecated: use 'migration-lint' instead ('allow-unsafe-migrations: false' means nothing)."]);
  });

  it('reads the old words of a tri-state input in the one vocabulary, with a warning', () => {
    const { read, warnings } = reading({ 'expect-version': 'true', 'migration-lint': 'auto' });
    expect(read('expect-version')).toBe('always');
    expect(read('migration-lint')).toBe('on');
    expect(reading({ 'expect-version': 'False' }).read('expect-version')).toBe('never');
    expect(warnings).toEqual(["'expect-version: true' is deprecated: write 'expect-version: always'.", "'migration-lint: auto' is deprecated: write 'migration-lint: on'."]);
  });
});

describe('parseSettings with deprecated names', () => {
  const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----';
  const base = { hosts: 'web1', user: 'app', 'ssh-key': KEY, 'insecure-skip-host-key-check': 'true', release: 'v1', lb: 'haproxy', 'lb-host': 'lb1', 'lb-backend': 'app' };

  it('builds the same settings from the old names as from the new ones, and reports each old name', () => {
    const old = { drain: 'always', 'drain-timeout': '7', 'traffic-gate-window': '3', 'traffic-gate-max-5xx-rate': '0.1', 'traffic-gate-latency-factor': '4', 'allow-unsafe-migrations': 'true', 'expect-version': 'false' };
    const current = { 'lb-drain': 'always', 'lb-drain-timeout': '7', 'lb-traffic-gate-window': '3', 'lb-traffic-gate-max-5xx-rate': '0.1', 'lb-traffic-gate-latency-factor': '4', 'migration-lint': 'warn', 'expect-version': 'never' };
    const warnings: string[] = [];
    const fromOld = parseSettings((name) => ({ ...base, ...old })[name] ?? '', {}, (message) => warnings.push(message));
    const fromNew = parseSettings((name) => ({ ...base, ...current })[name] ?? '', {}, () => expect.fail('no warning for current names'));
    expect(fromOld).toEqual(fromNew);
    expect(fromNew.balancer).toMatchObject({ drain: 'always', drainTimeoutSeconds: 7, windowSeconds: 3, max5xxRate: 0.1, latencyFactor: 4 });
    expect(fromNew.migration.lint).toBe('warn');
    expect(warnings).toHaveLength(7);
    for (const name of Object.keys(old)) expect(warnings.some((warning) => warning.includes(`'${name}`))).toBe(true);
  });

  it('names the input in a bad value given under the old name', () => {
    expect(() => parseSettings((name) => ({ ...base, drain: 'sometimes' })[name] ?? '', {})).toThrow("Invalid input 'lb-drain': 'sometimes' must be one of: auto, always, never.");
  });
});
