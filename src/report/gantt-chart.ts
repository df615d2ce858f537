import type { HostReport } from './reporter.js';
import type { PhaseSpan } from './timeline.js';

/**
 * The hosts' timelines as a Mermaid gantt chart (GitHub renders ```mermaid blocks in a job
 * summary): one section per host, its phases side by side on one row (compact mode), so 50
 * hosts make 50 rows. Times are the runner's clock in ms since the epoch (`dateFormat x`), and
 * the axis shows the viewer's clock time. Undefined when no host has a timeline.
 */
export function ganttChart(hosts: HostReport[], title: string): string | undefined {
  const timed = hosts.filter((host) => host.timeline?.length);
  if (timed.length === 0) return undefined;
  const lines = [
    '```mermaid',
    "%%{init: {'gantt': {'displayMode': 'compact', 'barHeight': 16, 'barGap': 3, 'topPadding': 40, 'fontSize': 11}}}%%",
    'gantt',
    `title ${text(title)}`,
    'dateFormat x',
    'axisFormat %H:%M:%S',
  ];
  for (const host of timed) {
    lines.push(`section ${text(host.host)}`);
    for (const span of host.timeline ?? []) lines.push(task(span));
  }
  lines.push('```');
  return lines.join('\n');
}

/** One bar: a failed phase is `crit` (red); a bar shorter than Mermaid can draw gets 10 ms. */
function task(span: PhaseSpan): string {
  const start = Date.parse(span.start);
  const end = start + Math.max(10, Math.round(span.seconds * 1000));
  const label = `${span.phase} ${span.seconds < 10 ? span.seconds.toFixed(1) : Math.round(span.seconds)}s`;
  return `${text(label)} :${span.ok ? '' : 'crit, '}${start}, ${end}`;
}

/**
 * A name as Mermaid gantt text: its syntax ends a task name at `:` and a line at `#` or `;`,
 * and a backtick could end the code block, so anything beyond plain name characters becomes `_`.
 */
function text(value: string): string {
  return value.replace(/[^\p{L}\p{N} ._@/()[\]+=-]/gu, '_').slice(0, 80);
}
