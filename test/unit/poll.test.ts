import { describe, expect, it } from 'vitest';
import { pollUntil } from '../../src/poll.js';

/** A clock that only moves when the poll sleeps (checks take no time), recording each turn's time. */
function clock() {
  let at = 0;
  const turns: number[] = [];
  return {
    turns,
    now: () => at,
    sleep: async (ms: number) => {
      at += ms;
    },
    check: (readyAt: number) => async () => {
      turns.push(at);
      return at >= readyAt ? true : undefined;
    },
  };
}

describe('pollUntil', () => {
  it('checks every intervalMs without stretch, and gives up when the next turn would pass the deadline', async () => {
    const c = clock();
    expect(await pollUntil(c.check(Infinity), { timeoutMs: 1000, intervalMs: 300, now: c.now, sleep: c.sleep })).toBeUndefined();
    expect(c.turns).toEqual([0, 300, 600, 900]);
  });

  it('stretches the interval to a fraction of the time waited, never below intervalMs', async () => {
    const c = clock();
    expect(await pollUntil(c.check(20_000), { timeoutMs: 60_000, intervalMs: 150, stretch: 0.1, now: c.now, sleep: c.sleep })).toBe(true);
    const gaps = c.turns.slice(1).map((turn, index) => turn - (c.turns[index] ?? 0));
    expect(gaps.slice(0, 10).every((gap) => gap === 150)).toBe(true); // until 1.5 s have passed
    for (const [index, gap] of gaps.entries()) expect(gap).toBe(Math.max(150, Math.round((c.turns[index] ?? 0) * 0.1)));
    // 20 s of waiting in 35 reads instead of 134 at a fixed 150 ms.
    expect(c.turns.length).toBeLessThan(40);
    expect(c.turns.at(-1)).toBeLessThanOrEqual(22_000); // found at most 10 % late
  });

  it('cuts a stretched interval at the deadline, so the last check still happens', async () => {
    const c = clock();
    expect(await pollUntil(c.check(Infinity), { timeoutMs: 10_000, intervalMs: 150, stretch: 0.5, now: c.now, sleep: c.sleep })).toBeUndefined();
    expect(c.turns.at(-1)).toBe(10_000);
  });
});
