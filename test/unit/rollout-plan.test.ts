import { describe, expect, it } from 'vitest';
import { describePlan, hostsPerBatch, parseBatchSize, planRollout, type BatchSize } from '../../src/rollout/rollout-plan.js';

const fleet = (n: number) => Array.from({ length: n }, (_, i) => `h${i + 1}`);
const shape = (hosts: number, canary: number, batchSize: BatchSize) => planRollout(fleet(hosts), { canary, batchSize }).map((batch) => batch.hosts.length);

describe('planRollout', () => {
  it.each([
    // hosts, canary, batch-size, batch sizes in order
    [1, 1, { percent: 100 }, [1]],
    [1, 0, { count: 1 }, [1]],
    [3, 1, { percent: 100 }, [1, 2]],
    [3, 0, { percent: 100 }, [3]],
    [3, 1, { count: 1 }, [1, 1, 1]],
    [10, 1, { percent: 25 }, [1, 2, 2, 2, 2, 1]],
    [10, 0, { percent: 25 }, [2, 2, 2, 2, 2]],
    [10, 2, { count: 3 }, [2, 3, 3, 2]],
    [10, 1, { percent: 5 }, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
    [50, 1, { percent: 100 }, [1, 49]],
    [50, 1, { percent: 30 }, [1, 15, 15, 15, 4]],
    [50, 5, { count: 100 }, [5, 45]],
    [3, 5, { count: 1 }, [3]],
    [2, 2, { percent: 50 }, [2]],
  ] as const)('%i hosts, canary %i, batch-size %o → %o', (hosts, canary, batchSize, expected) => {
    expect(shape(hosts, canary, batchSize)).toEqual(expected);
  });

  it('keeps the hosts input order, canary first, and marks only the canary batch', () => {
    const batches = planRollout(fleet(5), { canary: 1, batchSize: { count: 2 } });
    expect(batches).toEqual([
      { index: 0, hosts: ['h1'], canary: true },
      { index: 1, hosts: ['h2', 'h3'], canary: false },
      { index: 2, hosts: ['h4', 'h5'], canary: false },
    ]);
    expect(describePlan(batches)).toEqual(['canary (1 host): h1', 'batch 1 (2 hosts): h2, h3', 'batch 2 (2 hosts): h4, h5']);
    expect(describePlan(planRollout(fleet(2), { canary: 0, batchSize: { count: 1 } }))).toEqual(['batch 1 (1 host): h1', 'batch 2 (1 host): h2']);
  });

  it('rounds a percentage of the whole fleet down, never below one host', () => {
    expect(hostsPerBatch({ percent: 25 }, 3)).toBe(1);
    expect(hostsPerBatch({ percent: 25 }, 10)).toBe(2);
    expect(hostsPerBatch({ percent: 33.4 }, 3)).toBe(1);
    expect(hostsPerBatch({ percent: 100 }, 7)).toBe(7);
    expect(hostsPerBatch({ count: 4 }, 2)).toBe(4);
  });
});

describe('parseBatchSize', () => {
  it.each([
    ['1', { count: 1 }],
    ['12', { count: 12 }],
    ['25%', { percent: 25 }],
    ['12.5%', { percent: 12.5 }],
    ['100%', { percent: 100 }],
  ] as const)('%s', (text, expected) => expect(parseBatchSize(text)).toEqual(expected));

  it.each(['0', '0%', '101%', '-1', 'all', '1.5', '%', ''])('rejects %j', (text) => expect(parseBatchSize(text)).toBeUndefined());
});
