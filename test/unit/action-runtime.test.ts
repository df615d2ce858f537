import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ACTION_NODE } from '../support/run-action.js';

/** The e2e suite runs the bundle on the Node that action.yml declares, as GitHub's runner does. */
describe('the runtime the bundle is tested on', () => {
  it('is the major version action.yml names in runs.using', () => {
    const action = readFileSync(new URL('../../action.yml', import.meta.url), 'utf8');
    const declared = /^ {2}using: node(\d+)$/m.exec(action)?.[1];
    expect(declared, 'runs.using in action.yml').toBe('24');
    const version = execFileSync(ACTION_NODE, ['--version'], { encoding: 'utf8' }).trim();
    expect(version.split('.')[0]).toBe(`v${declared}`);
  });
});
