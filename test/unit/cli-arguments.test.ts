import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliInputs } from '../../src/config/cli-arguments.js';

describe('cliInputs', () => {
  it('maps --input value and --input=value to the runner variables', () => {
    expect(cliInputs(['--hosts', 'web1,web2', '--mode=plan', '--health-url=http://x/?a=b'])).toEqual({
      INPUT_HOSTS: 'web1,web2',
      INPUT_MODE: 'plan',
      'INPUT_HEALTH-URL': 'http://x/?a=b',
    });
  });

  it('reads @file values, with ~ for home', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gd-cli-'));
    try {
      writeFileSync(path.join(dir, 'key'), 'KEY TEXT\n');
      expect(cliInputs(['--ssh-key', '@~/key'], dir)).toEqual({ 'INPUT_SSH-KEY': 'KEY TEXT\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses unknown options and missing values', () => {
    expect(() => cliInputs(['--host', 'x'])).toThrow(/unknown option/);
    expect(() => cliInputs(['web1'])).toThrow(/unknown option/);
    expect(() => cliInputs(['--release'])).toThrow(/needs a value/);
  });
});
