import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { DEPRECATED_INPUTS } from '../../src/config/input-aliases.js';
import { STRATEGIES } from '../../src/config/input-helper.js';

/** The README and docs/ are the users' manual: they must keep up with action.yml and the lint rules. */
const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const readme = read('README.md');
const action = read('action.yml');
const rules = read('src/migrate/RULES.md');
const migrations = read('docs/migrations.md');
const docs = readdirSync(new URL('../../docs/', import.meta.url)).filter((name) => name.endsWith('.md'));

describe('README', () => {
  const names = (block: 'inputs' | 'outputs') => {
    const manifest = load(action) as Record<typeof block, Record<string, unknown>>;
    return Object.keys(manifest[block]);
  };

  it('is short enough to read in one sitting, the quick start first', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(350);
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((match) => match[1]);
    expect(headings[0]).toBe('Quick start');
    expect(readme.slice(0, readme.indexOf('## Quick start'))).toContain('Linux runners only');
  });

  it('documents every input and output of action.yml in its tables, and names each deprecated input once, outside them', () => {
    const all = [...names('inputs').filter((name) => !DEPRECATED_INPUTS.includes(name)), ...names('outputs')];
    expect(all.length).toBeGreaterThan(30);
    for (const name of all) expect(readme, name).toContain(`| \`${name}\` |`);
    const oldNames = readme.slice(readme.indexOf('Old input names still work'));
    for (const name of DEPRECATED_INPUTS) {
      expect(oldNames, name).toMatch(new RegExp(`\`${name}[\`:]`));
      expect(readme, name).not.toContain(`| \`${name}\` |`);
    }
  });

  it('shows workflows that parse and use only inputs the action declares', () => {
    const inputs = new Set(names('inputs'));
    const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    for (const block of blocks) {
      // A step fragment (indented) parses once dedented.
      const indent = Math.min(...block.split('\n').filter((line) => line.trim()).map((line) => /^ */.exec(line)?.[0].length ?? 0));
      const parsed = load(block.split('\n').map((line) => line.slice(indent)).join('\n'));
      const steps = JSON.stringify(parsed);
      for (const match of block.matchAll(/graceful-deploy\/graceful-deploy@v1\n\s+with:\n((?:\s{10,}.*\n)+)/g)) {
        for (const key of (match[1] ?? '').matchAll(/^\s+([a-z-]+):/gm)) expect(inputs, `${key[1]} in ${steps.slice(0, 80)}`).toContain(key[1]);
      }
    }
  });

  it('names only files that exist', () => {
    for (const [, target] of readme.matchAll(/\]\(((?:examples|docs|hooks|src)\/[^)#]+|[A-Z]+\.md|LICENSE|action\.yml)(?:#[^)]*)?\)/g)) {
      expect(existsSync(new URL(`../../${target}`, import.meta.url)), target).toBe(true);
    }
  });

  it('gives the demo and test commands', () => {
    expect(readme).toContain('bash scripts/demo.sh');
    expect(readme).toContain('bash scripts/test.sh');
    expect(readme).toContain('## Running under systemd');
  });

  it('names the default strategy the code uses (auto), and starts gunicorn as usr2 needs: daemonized', () => {
    expect(STRATEGIES[0]).toBe('auto');
    expect(readme).toContain('| `strategy` | `auto` / `chain` |');
    expect(readme).toContain('| gunicorn | `auto` (default) |');
    for (const [command] of readme.matchAll(/gunicorn -c \S+[^`\n]*/g)) expect(command).toContain('--daemon');
  });

  it('says the rollout is a canary then batches, not one host at a time', () => {
    for (const text of [readme, ...docs.map((name) => read(`docs/${name}`))]) expect(text).not.toMatch(/deployed one at a time/i);
  });
});

describe('docs/migrations.md', () => {
  it('documents every lint rule with its safe alternative', () => {
    for (const match of rules.matchAll(/^#### `([a-z-]+)`$/gm)) expect(migrations, match[1]).toContain(`#### \`${match[1]}\``);
    // The whole of RULES.md below its heading: rule table, severities, Limits.
    expect(migrations).toContain(rules.split('\n').slice(2).join('\n').trim());
  });
});

describe('user-facing text', () => {
  it('names no internal tracker items', () => {
    const texts = {
      'README.md': readme,
      'action.yml': action,
      'CONTRIBUTING.md': read('CONTRIBUTING.md'),
      'hooks/graceful_deploy_hook.py': read('hooks/graceful_deploy_hook.py'),
      ...Object.fromEntries(docs.map((name) => [`docs/${name}`, read(`docs/${name}`)])),
      ...Object.fromEntries(
        readdirSync(new URL('../../examples/', import.meta.url), { recursive: true, withFileTypes: true })
          .filter((entry) => entry.isFile())
          .map((entry) => {
            const name = `${entry.parentPath.replace(/^.*?\/examples\/?/, 'examples/')}/${entry.name}`.replace(/\/+/g, '/');
            return [name, read(name)];
          }),
      ),
    };
    for (const [name, text] of Object.entries(texts)) {
      expect(text, name).not.toMatch(/\b(issue|article|seed)s? #?\d+/i);
      expect(text, name).not.toMatch(/(?<![\w/])#\d{2,}\b/);
    }
  });
});
