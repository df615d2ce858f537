import { describe, expect, it } from 'vitest';
import { ganttChart } from '../../src/report/gantt-chart.js';
import { Timeline, reloadSteps } from '../../src/report/timeline.js';
import type { HostReport } from '../../src/report/reporter.js';

/** A clock the test moves by hand. */
function clock(start = Date.parse('2026-01-02T03:04:05.000Z')) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('Timeline', () => {
  it('records each tracked phase with its start, length and result, per host', async () => {
    const time = clock();
    const timeline = new Timeline(time.now);
    await timeline.track('h1', 'stage', async () => void time.advance(1500));
    await timeline.track('h2', 'stage', async () => void time.advance(250));
    await expect(
      timeline.track('h1', 'gate', async () => {
        time.advance(2000);
        throw new Error('gate failed');
      }),
    ).rejects.toThrow('gate failed');
    expect(timeline.spans('h1')).toEqual([
      { phase: 'stage', start: '2026-01-02T03:04:05.000Z', seconds: 1.5, ok: true },
      { phase: 'gate', start: '2026-01-02T03:04:06.750Z', seconds: 2, ok: false },
    ]);
    expect(timeline.spans('h2')).toEqual([{ phase: 'stage', start: '2026-01-02T03:04:06.500Z', seconds: 0.25, ok: true }]);
    expect(timeline.spans('nobody')).toEqual([]);
  });

  it("splits a reload into the driver's steps: reload, then boot after the signal, then retire", async () => {
    const time = clock();
    const timeline = new Timeline(time.now);
    const result = await timeline.track('h1', 'reload', async (next) => {
      const progress = reloadSteps(next);
      time.advance(300);
      progress('signalled');
      time.advance(2100);
      progress('booted');
      time.advance(400);
      return 'handle';
    });
    expect(result).toBe('handle');
    expect(timeline.spans('h1').map(({ phase, seconds, ok }) => [phase, seconds, ok])).toEqual([
      ['reload', 0.3, true],
      ['boot', 2.1, true],
      ['retire', 0.4, true],
    ]);
  });

  it('marks only the step that was running as failed', async () => {
    const time = clock();
    const timeline = new Timeline(time.now);
    await expect(
      timeline.track('h1', 'reload', async (next) => {
        time.advance(100);
        reloadSteps(next)('signalled');
        time.advance(5000);
        throw new Error('the new master exited');
      }),
    ).rejects.toThrow();
    expect(timeline.spans('h1').map(({ phase, ok }) => [phase, ok])).toEqual([
      ['reload', true],
      ['boot', false],
    ]);
  });
});

describe('ganttChart', () => {
  const span = (phase: 'stage' | 'gate', start: string, seconds: number, ok = true) => ({ phase, start, seconds, ok });

  it('draws one section per host with its phases as bars in ms since the epoch, failures in red', () => {
    const hosts: HostReport[] = [
      { host: 'root@web1', status: 'deployed', timeline: [span('stage', '2026-01-02T03:04:05.000Z', 1.5), span('gate', '2026-01-02T03:04:06.500Z', 12.25, false)] },
      { host: 'root@web2', status: 'pending' },
    ];
    expect(ganttChart(hosts, 'deployed v2')).toBe(
      [
        '```mermaid',
        "%%{init: {'gantt': {'displayMode': 'compact', 'barHeight': 16, 'barGap': 3, 'topPadding': 40, 'fontSize': 11}}}%%",
        'gantt',
        'title deployed v2',
        'dateFormat x',
        'axisFormat %H:%M:%S',
        'section root@web1',
        `stage 1.5s :${Date.parse('2026-01-02T03:04:05.000Z')}, ${Date.parse('2026-01-02T03:04:06.500Z')}`,
        `gate 12s :crit, ${Date.parse('2026-01-02T03:04:06.500Z')}, ${Date.parse('2026-01-02T03:04:18.750Z')}`,
        '```',
      ].join('\n'),
    );
  });

  it('is absent when no host has a timeline (plan, unlock, a failure before connecting)', () => {
    expect(ganttChart([{ host: 'h1', status: 'planned' }], 'planned v2')).toBeUndefined();
  });

  it('keeps host names and titles from breaking the chart or the code block', () => {
    const hosts: HostReport[] = [{ host: 'evil:host;#x`\n```\nsection pwned', status: 'failed', timeline: [span('stage', '2026-01-02T03:04:05.000Z', 0)] }];
    const chart = ganttChart(hosts, 'failed v2: `x`;#') ?? '';
    const body = chart.split('\n').slice(1, -1);
    expect(body.some((line) => line.includes('`'))).toBe(false);
    expect(body.filter((line) => line.startsWith('section '))).toEqual(['section evil_host__x______section pwned']);
    expect(chart).toContain('title failed v2_ _x___');
    // A zero-length phase still gets a bar Mermaid can draw.
    expect(chart).toContain(`stage 0.0s :${Date.parse('2026-01-02T03:04:05.000Z')}, ${Date.parse('2026-01-02T03:04:05.010Z')}`);
  });

  it('stays one section per host for 50 hosts', () => {
    const hosts: HostReport[] = Array.from({ length: 50 }, (_, i) => ({ host: `h${i + 1}`, status: 'deployed', timeline: [span('stage', '2026-01-02T03:04:05.000Z', 1), span('gate', '2026-01-02T03:04:06.000Z', 1)] }));
    const chart = ganttChart(hosts, 'deployed v2') ?? '';
    expect(chart.split('\n').filter((line) => line.startsWith('section '))).toHaveLength(50);
  });
});
