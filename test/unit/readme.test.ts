import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/** The README is the users' manual: it must keep up with action.yml and the lint rules. */
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const action = readFileSync(new URL('../../action.yml', import.meta.url), 'utf8');
const rules = readFileSync(new URL('../../src/migrate/RULES.md', import.meta.url), 'utf8');

describe('README', () => {
  const names = (block: 'inputs' | 'outputs') => {
    const start = action.indexOf(`\n${block}:\n`);
    const end = action.indexOf('\n\n', start + 2);
    return [...action.slice(start, end).matchAll(/^ {2}([a-z-]+):$/gm)].map((match) => match[1]);
  };

  it('documents every input and output of action.yml', () => {
    const all = [...names('inputs'), ...names('outputs')];
    expect(all.length).toBeGreaterThan(30);
    for (const name of all) expect(readme, name).toContain(`| \`${name}\` |`);
  });

  it('documents every lint rule with its safe alternative', () => {
    for (const match of rules.matchAll(/^#### `([a-z-]+)`$/gm)) expect(readme, match[1]).toContain(`#### \`${match[1]}\``);
    // The whole of RULES.md below its heading: rule table, severities, Limits.
    expect(readme).toContain(rules.split('\n').slice(2).join('\n').trim());
  });

  it('gives the demo and test commands', () => {
    expect(readme).toContain('bash scripts/demo.sh');
    expect(readme).toContain('bash scripts/test.sh');
  });
});
