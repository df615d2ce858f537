import { describe, expect, it } from 'vitest';

import { findAllowance, parseAllowances } from '../../../src/migrate/allowances.js';
import { revisionFiles } from './fixtures.js';
import { lintSnapshot } from './lint-helpers.js';

describe('parseAllowances', () => {
  it('reads rule lists and reasons from comment lines and trailing comments', () => {
    const source = [
      '"""drop things"""',
      '# graceful-deploy: allow=drop-column,rename-table v2.3 stopped reading users.handle (#412)',
      "    op.drop_table('x')  # graceful-deploy: allow=drop-table: nothing reads x since v1.9",
      '#graceful-deploy:allow=TRUNCATE',
      '# graceful-deploy: allow drop-column (no "=": not an allowance)',
      '# graceful-deploy: allow= drop-column (space after "=": not an allowance)',
    ].join('\n');
    expect(parseAllowances(source)).toEqual([
      { rules: ['drop-column', 'rename-table'], reason: 'v2.3 stopped reading users.handle (#412)', line: 2 },
      { rules: ['drop-table'], reason: 'nothing reads x since v1.9', line: 3 },
      { rules: ['truncate'], reason: null, line: 4 },
    ]);
  });

  it('finds the first allowance naming a rule', () => {
    const allowances = parseAllowances(revisionFiles('postgresql')['p15']?.source ?? '');
    expect(findAllowance(allowances, 'drop-column')?.line).toBe(18);
    expect(findAllowance(allowances, 'truncate')).toBeUndefined();
  });
});

describe('allowances in the lint', () => {
  it('keeps allowed findings, marked allowed with the reason and the comment line', async () => {
    const findings = await lintSnapshot('postgresql-p01-head', 'postgresql', 'postgresql');
    const p15 = findings.filter((finding) => finding.revision === 'p15');
    expect(p15.filter((finding) => finding.rule === 'drop-column')).toEqual([
      expect.objectContaining({ allowed: true, allowReason: 'v2.3 stopped reading users.handle (PR #412)', line: 18 }),
      expect.objectContaining({ allowed: true, statement: 'ALTER TABLE orders DROP COLUMN shard' }),
    ]);
    // Allowing drop-column allows nothing else: the lock timeout finding of p15 still counts.
    expect(p15.find((finding) => finding.rule === 'lock-timeout')).toMatchObject({ allowed: false, severity: 'error' });
    expect(findings.filter((finding) => finding.revision !== 'p15' && finding.allowed)).toEqual([]);
  });

  it('reports an allowance that names no rule', async () => {
    const findings = await lintSnapshot('postgresql-p01-head', 'postgresql', 'postgresql');
    expect(findings.filter((finding) => finding.rule === 'unknown-allowance')).toEqual([
      expect.objectContaining({
        severity: 'warning',
        revision: 'p15',
        file: 'migrations/versions/p15_allowed_drop.py',
        line: 19,
        message: expect.stringContaining("'drop-colum'"),
      }),
    ]);
  });
});
