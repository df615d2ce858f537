import { readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { DEPRECATED_INPUTS, INPUT_ALIASES } from '../../src/config/input-aliases.js';
import { Inputs, Outputs } from '../../src/config/input-names.js';

interface Manifest {
  inputs: Record<string, { description: string; default?: string }>;
  outputs: Record<string, { description: string }>;
  runs: { using: string; main: string };
}

/** action.yml is what the runner reads: it must parse as YAML and name exactly the inputs the code reads. */
describe('action.yml', () => {
  const manifest = load(readFileSync(new URL('../../action.yml', import.meta.url), 'utf8')) as Manifest;

  it('parses, and every input and output has a description', () => {
    for (const [name, input] of Object.entries({ ...manifest.inputs, ...manifest.outputs })) {
      expect(typeof input.description, name).toBe('string');
      expect(input.description.length, name).toBeGreaterThan(10);
    }
    expect(manifest.runs).toMatchObject({ using: 'node24', main: 'dist/index.js' });
  });

  it('declares the inputs and outputs the code reads, no more, no fewer', () => {
    expect(Object.keys(manifest.inputs).sort()).toEqual([...Object.values(Inputs), ...DEPRECATED_INPUTS].sort());
    expect(Object.keys(manifest.outputs).sort()).toEqual(Object.values(Outputs).sort());
  });

  it('describes each deprecated name as such, naming its new input; neither side of an alias has a default', () => {
    // A default would always be set, so the runner could not tell which of the two names the user wrote.
    for (const alias of INPUT_ALIASES) {
      expect(manifest.inputs[alias.old]?.description, alias.old).toMatch(new RegExp(`^Deprecated: use \`${alias.current}[\`:]`));
      expect(manifest.inputs[alias.old]?.default, alias.old).toBeUndefined();
      expect(manifest.inputs[alias.current]?.default, alias.current).toBeUndefined();
    }
  });

  it('has no default for user: the SSH user is never guessed', () => {
    expect(manifest.inputs.user?.default).toBeUndefined();
  });
});
