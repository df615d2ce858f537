/**
 * `npm run bench -- canary`: what a release that fails every real request costs the clients
 * before the traffic gate rolls it back, with the canary at full weight and at a lowered one
 * (lb-canary-weight). Not a test: it measures and reports.
 *
 * One sandbox of 3 hosts (gunicorn 20.1, 2 sync workers, a 2 s import) behind HAProxy on its own
 * host, every server at weight 100, and steady load through HAProxy (100 req/s over 10
 * connections) from 1 s before each deploy to 2 s after it. Each deploy is of a release whose
 * /health/ready passes but whose / answers 500 (the canary passes its readiness gate, the traffic
 * gate over its default 10 s window catches it), with the default strategy and canary.
 * Writes bench/results/canary.{md,json}.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRelease } from '../test/support/app-fixture.js';
import { sleep } from '../test/support/proc.js';
import { runAction, sandboxInputs } from '../test/support/run-action.js';
import { startServingSandbox, type Sandbox } from '../test/support/sandbox.js';
import { startMeter, type MeterReport } from './load-meter.js';

const HOSTS = 3;
const BOOT_SECONDS = 2;
const WEIGHT = 100;
const LOAD = { rate: 100, connections: 10, maxSeconds: 240 } as const;
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
/** lb-canary-weight of each run; empty = full weight (the default). */
const WEIGHTS = ['', '25%', '10%'];
/** BENCH_CANARY_WEIGHTS=10% runs only those (comma-separated; `full` for the default), without writing results; BENCH_VERBOSE=1 prints each run's log. */
const PICKED = process.env.BENCH_CANARY_WEIGHTS?.split(',').map((weight) => (weight === 'full' ? '' : weight));

interface CanaryRow {
  canaryWeight: string;
  outcome: string;
  requests: number;
  failed: number;
  failedShare: number;
  latencyMs: { p50: number; p99: number; max: number };
  deploySeconds: number;
  /** When the traffic gate failed early: how far into its window it decided. */
  gateDecidedSeconds?: number;
  hostsServe: string[];
}

export async function canaryBench(): Promise<void> {
  const started = new Date();
  const rows: CanaryRow[] = [];
  const sb = await startServingSandbox({ hosts: HOSTS, workers: 2, lbHost: true, serverWeight: WEIGHT, version: 'v1', app: { bootSeconds: BOOT_SECONDS } });
  const sources: string[] = [];
  try {
    for (const [index, weight] of (PICKED ?? WEIGHTS).entries()) {
      const row = await deployBroken(sb, `v${index + 2}`, weight, sources);
      rows.push(row);
      console.log(`bench canary: weight ${row.canaryWeight} → ${row.outcome}; failed ${row.failed}/${row.requests} (${percent(row.failedShare)}); ${row.deploySeconds} s`);
    }
  } finally {
    await sb.stop();
    await Promise.all(sources.map((dir) => rm(dir, { recursive: true, force: true })));
  }
  const table = [
    `# A release that fails every real request, caught by the traffic gate (${started.toISOString().slice(0, 10)})`,
    '',
    `${HOSTS} hosts, gunicorn 20.1 (2 sync workers, ${BOOT_SECONDS} s import), HAProxy on its own host with every server at weight ${WEIGHT}, ${LOAD.rate} req/s through HAProxy from 1 s before each deploy to 2 s after it. The release passes /health/ready and answers 500 on /; default strategy, canary 1, traffic gate window 10 s.`,
    '',
    '| lb-canary-weight | outcome | failed / requests | failed share | gate decided after (s) | p50 / p99 / max latency (ms) | deploy (s) | hosts serve |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (row) =>
        `| ${row.canaryWeight} | ${row.outcome} | ${row.failed} / ${row.requests} | ${percent(row.failedShare)} | ${row.gateDecidedSeconds ?? '—'} | ${row.latencyMs.p50} / ${row.latencyMs.p99} / ${row.latencyMs.max} | ${row.deploySeconds} | ${row.hostsServe.join(' ')} |`,
    ),
    '',
  ].join('\n');
  console.log(`\n${table}`);
  if (PICKED) return;
  await mkdir(RESULTS, { recursive: true });
  await writeFile(join(RESULTS, 'canary.md'), table);
  await writeFile(join(RESULTS, 'canary.json'), `${JSON.stringify({ date: started.toISOString(), hosts: HOSTS, weight: WEIGHT, load: LOAD, rows }, null, 2)}\n`);
}

function percent(share: number): string {
  return `${(share * 100).toFixed(2)}%`;
}

async function deployBroken(sb: Sandbox, version: string, weight: string, sources: string[]): Promise<CanaryRow> {
  const lb = sb.lb;
  if (!lb) throw new Error('bench canary: the sandbox has no LB host');
  const source = await mkdtemp(join(tmpdir(), `gd-bench-canary-${version}-`));
  sources.push(source);
  await writeRelease(source, { version, bootSeconds: BOOT_SECONDS, workers: 2, failRequests: true });
  await sb.waitForLb({ timeoutMs: 60_000 });
  const load = startMeter({ url: sb.lbUrl, ...LOAD });
  let outcome: string;
  let gate: string | undefined;
  let seconds: number;
  let report: MeterReport;
  try {
    await sleep(1000);
    const t0 = performance.now();
    const result = await runAction(
      { ...sandboxInputs(sb), source, release: version, lb: 'haproxy', 'lb-host': lb.ip, 'lb-backend': lb.backend, 'lb-canary-weight': weight, 'health-interval': '0.5' },
      { timeoutMs: 300_000 },
    );
    seconds = (performance.now() - t0) / 1000;
    outcome = result.outputs.status ?? `exit ${result.code}`;
    gate = /traffic gate FAILED: .*\(decided after ([\d.]+)s/.exec(result.stdout)?.[1];
    if (process.env.BENCH_VERBOSE) console.log(result.stdout);
    await sleep(2000);
  } finally {
    report = await load.stop();
  }
  const hostsServe = await Promise.all(sb.hosts.map(async (host) => (await sb.probe(host.index)).version ?? 'down'));
  return {
    canaryWeight: weight || 'full (100%)',
    outcome,
    requests: report.requests,
    failed: report.failed,
    failedShare: report.requests ? report.failed / report.requests : 0,
    latencyMs: report.latencyMs,
    deploySeconds: Math.round(seconds * 10) / 10,
    gateDecidedSeconds: gate === undefined ? undefined : Number(gate),
    hostsServe,
  };
}
