/**
 * Fleet benchmark (`npm run bench -- fleet --hosts 10`; needs root, like the e2e sandbox). Not a
 * test: it measures and reports. One sandbox of N hosts (gunicorn 20.1, 2 sync workers, an app
 * that sleeps 2 s at import) behind HAProxy, steady load through HAProxy, and the same release
 * deployed with strategy usr2 under three rollout plans, one after the other:
 *   one-at-a-time  max-parallel 1, canary 0, batch-size 1;
 *   default        no plan inputs;
 *   all-at-once    canary 0, batch-size 100%, max-parallel N.
 * Per plan: the deploy's wall time, failed requests and max latency through HAProxy, the action's
 * own peak memory (VmHWM of its node process) and CPU seconds (user + sys), read by
 * usage-probe.cjs as the process exits, and the mean seconds per phase from the `hosts` output's
 * timelines. Options: --hosts N (1..50), --plans a,b (a subset), --boot S (default 2),
 * --setup-only (start the sandbox, report its set-up time and the machine's memory, stop).
 * Prints a markdown table and writes bench/results/fleet-<N>.{md,json}.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeRelease } from '../test/support/app-fixture.js';
import { sleep } from '../test/support/proc.js';
import { runAction, sandboxInputs } from '../test/support/run-action.js';
import { startServingSandbox, type Sandbox } from '../test/support/sandbox.js';
import type { HostReport } from '../src/report/reporter.js';
import { PHASES, type Phase } from '../src/report/timeline.js';
import { startMeter } from './load-meter.js';

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
/**
 * Preloaded into the action's node process (NODE_OPTIONS=--require): as the process exits, it
 * writes its peak resident memory (VmHWM) and CPU seconds to GD_USAGE_FILE.
 */
const USAGE_PROBE = `'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
process.on('exit', () => {
  const hwm = /^VmHWM:\\s+(\\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  const usage = process.resourceUsage();
  writeFileSync(process.env.GD_USAGE_FILE, JSON.stringify({ vmHwmKiB: hwm ? Number(hwm[1]) : undefined, userSeconds: usage.userCPUTime / 1e6, systemSeconds: usage.systemCPUTime / 1e6 }));
});
`;
const LOAD = { rate: 100, connections: 10, maxSeconds: 900 } as const;
const WORKERS = 2;

type PlanName = 'one-at-a-time' | 'default' | 'all-at-once';
const PLAN_NAMES: readonly PlanName[] = ['one-at-a-time', 'default', 'all-at-once'];

/** The plan inputs (names from issue 9; today's action ignores those it does not know yet). */
function planInputs(plan: PlanName, hosts: number): Record<string, string> {
  if (plan === 'one-at-a-time') return { 'max-parallel': '1', canary: '0', 'batch-size': '1' };
  if (plan === 'all-at-once') return { canary: '0', 'batch-size': '100%', 'max-parallel': String(hosts) };
  return {};
}

interface FleetRow {
  plan: PlanName;
  status: string;
  seconds: number;
  requests: number;
  failed: number;
  maxLatencyMs: number;
  p99LatencyMs: number;
  peakMemoryMiB: number;
  cpuSeconds: number;
  /** CPU seconds the hosts spent during the deploy (their whole process trees, reaped children included), per host. */
  hostCpuSeconds: number;
  /** Mean seconds per phase over the hosts that went through it. */
  phases: Partial<Record<Phase, number>>;
  /** The slowest host's phases, for the per-host picture. */
  hostsDeployed: number;
  note: string;
}

export async function fleetBench(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { hosts: { type: 'string', default: '10' }, plans: { type: 'string' }, boot: { type: 'string', default: '2' }, 'setup-only': { type: 'boolean', default: false } } });
  const hosts = Number(values.hosts);
  const bootSeconds = Number(values.boot);
  const plans = values.plans ? (values.plans.split(',') as PlanName[]) : PLAN_NAMES;
  const unknown = plans.filter((plan) => !PLAN_NAMES.includes(plan));
  if (unknown.length || !Number.isInteger(hosts) || hosts < 1 || hosts > 50) throw new Error(`fleet: --hosts 1..50 and --plans of ${PLAN_NAMES.join(', ')} (got ${hosts}, ${unknown.join(', ')})`);

  const started = new Date();
  const setupStart = performance.now();
  const sb = await startServingSandbox({ hosts, workers: WORKERS, version: 'v1', app: { bootSeconds } });
  const setupSeconds = round((performance.now() - setupStart) / 1000);
  console.log(`fleet: sandbox ${sb.id} serving v1 on ${hosts} hosts (set up in ${setupSeconds} s)`);
  const rows: FleetRow[] = [];
  const sources: string[] = [];
  if (values['setup-only']) {
    console.log(`fleet: memory in use with ${hosts} hosts serving: ${usedMemoryMiB()} MiB; every host serves: ${(await Promise.all(sb.hosts.map((host) => sb.probe(host.index)))).every((probe) => probe.status === 200)}`);
    await sb.stop();
    return;
  }
  try {
    let counter = 1;
    for (const plan of plans) {
      counter += 1;
      const version = `v${counter}`;
      const source = await mkdtemp(join(tmpdir(), `gd-fleet-${version}-`));
      sources.push(source);
      await writeRelease(source, { version, bootSeconds, workers: WORKERS });
      const row = await deployUnderLoad(sb, plan, version, source, hosts);
      rows.push(row);
      console.log(`fleet: ${plan} → ${row.status} in ${row.seconds} s; failed ${row.failed}/${row.requests}; max ${row.maxLatencyMs} ms; ${row.peakMemoryMiB} MiB; ${row.cpuSeconds} s CPU`);
    }
  } finally {
    await sb.stop();
    await Promise.all(sources.map((dir) => rm(dir, { recursive: true, force: true })));
  }
  const markdown = renderMarkdown(rows, { hosts, bootSeconds, setupSeconds, date: started });
  console.log(`\n${markdown}`);
  await mkdir(RESULTS, { recursive: true });
  await writeFile(join(RESULTS, `fleet-${hosts}.md`), markdown);
  await writeFile(join(RESULTS, `fleet-${hosts}.json`), `${JSON.stringify({ date: started.toISOString(), hosts, bootSeconds, setupSeconds, load: LOAD, rows }, null, 2)}\n`);
}

async function deployUnderLoad(sb: Sandbox, plan: PlanName, version: string, source: string, hosts: number): Promise<FleetRow> {
  await sb.waitForLb({ timeoutMs: 120_000 });
  const usageDir = await mkdtemp(join(tmpdir(), 'gd-fleet-usage-'));
  const usageFile = join(usageDir, 'usage.json');
  await writeFile(join(usageDir, 'probe.cjs'), USAGE_PROBE);
  const load = startMeter({ url: sb.lbUrl, ...LOAD });
  await sleep(1000);
  const cpuBefore = treesCpuSeconds(sb.hosts.map((host) => host.initPid));
  const t0 = performance.now();
  const result = await runAction(
    { ...sandboxInputs(sb), source, release: version, strategy: 'usr2', 'health-timeout': '60', ...planInputs(plan, hosts) },
    { timeoutMs: 1_800_000, env: { NODE_OPTIONS: `--require ${join(usageDir, 'probe.cjs')}`, GD_USAGE_FILE: usageFile } },
  );
  const seconds = (performance.now() - t0) / 1000;
  const hostCpu = treesCpuSeconds(sb.hosts.map((host) => host.initPid)) - cpuBefore;
  await sleep(1000);
  const report = await load.stop();
  const usage = JSON.parse(await readFile(usageFile, 'utf8').catch(() => '{}')) as { vmHwmKiB?: number; userSeconds?: number; systemSeconds?: number };
  await rm(usageDir, { recursive: true, force: true });
  const reports = JSON.parse(result.outputs.hosts ?? '[]') as HostReport[];
  return {
    plan,
    status: result.outputs.status ?? `exit ${result.code}`,
    seconds: round(seconds),
    requests: report.requests,
    failed: report.failed,
    maxLatencyMs: report.latencyMs.max,
    p99LatencyMs: report.latencyMs.p99,
    peakMemoryMiB: round((usage.vmHwmKiB ?? 0) / 1024),
    cpuSeconds: round((usage.userSeconds ?? 0) + (usage.systemSeconds ?? 0)),
    hostCpuSeconds: round(hostCpu / hosts),
    phases: meanPhases(reports),
    hostsDeployed: reports.filter((host) => host.status === 'deployed').length,
    note: result.code === 0 ? '' : (/^::error::(.*)$/m.exec(result.stdout)?.[1] ?? '').split('%0A')[0]?.slice(0, 200) ?? '',
  };
}

/** Mean seconds of each phase over the hosts that have it (a phase a host passed through twice counts summed). */
export function meanPhases(reports: HostReport[]): Partial<Record<Phase, number>> {
  const means: Partial<Record<Phase, number>> = {};
  for (const phase of PHASES) {
    const totals = reports.map((host) => (host.timeline ?? []).filter((span) => span.phase === phase).reduce((sum, span) => sum + span.seconds, 0)).filter((total) => total > 0);
    if (totals.length) means[phase] = round(totals.reduce((a, b) => a + b, 0) / totals.length);
  }
  return means;
}

function renderMarkdown(rows: FleetRow[], setup: { hosts: number; bootSeconds: number; setupSeconds: number; date: Date }): string {
  const phases = PHASES.filter((phase) => rows.some((row) => row.phases[phase] !== undefined));
  const lines = [
    `# Fleet benchmark: ${setup.hosts} hosts (\`npm run bench -- fleet --hosts ${setup.hosts}\`)`,
    '',
    `Run ${setup.date.toISOString()}. ${setup.hosts} sandbox hosts (gunicorn 20.1, ${WORKERS} sync workers, an app that sleeps ${setup.bootSeconds} s at import; sandbox set up in ${setup.setupSeconds} s), ` +
      `strategy usr2, default gate, ${LOAD.rate} req/s over ${LOAD.connections} connections through HAProxy from 1 s before each deploy to 1 s after it. ` +
      'Memory: VmHWM of the action\'s node process; CPU: its user + system seconds; host CPU: the seconds each host\'s processes spent during the deploy (sshd and all it ran, the gunicorn masters and workers), mean per host.',
    '',
    '| plan | result | deploy s | failed / requests | p99 ms | max ms | peak MiB | CPU s | host CPU s |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((row) => `| ${row.plan} | ${row.status} (${row.hostsDeployed}/${setup.hosts} deployed) | ${row.seconds} | ${row.failed} / ${row.requests} | ${row.p99LatencyMs} | ${row.maxLatencyMs} | ${row.peakMemoryMiB} | ${row.cpuSeconds} | ${row.hostCpuSeconds ?? '—'} |`),
    '',
    'Mean seconds per phase and host (from the `hosts` output\'s timelines):',
    '',
    `| plan | ${phases.join(' | ')} |`,
    `|---|${phases.map(() => '---:').join('|')}|`,
    ...rows.map((row) => `| ${row.plan} | ${phases.map((phase) => row.phases[phase] ?? '—').join(' | ')} |`),
  ];
  const notes = rows.filter((row) => row.note);
  if (notes.length) lines.push('', ...notes.map((row) => `- ${row.plan}: ${row.note}`));
  return `${lines.join('\n')}\n`;
}

/**
 * CPU seconds spent so far by the process trees under `roots` (each sandbox host's init): the
 * live processes' own time plus what each has collected from the children it reaped, so a
 * process that came and went during the deploy is counted once, in its reaper.
 */
function treesCpuSeconds(roots: number[]): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = readFileSync(`/proc/${entry}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      // After "pid (comm) ": state ppid ... utime(12) stime(13) cutime(14) cstime(15), 1-based from state.
      const ticks = [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index] ?? 0), 0);
      stats.set(Number(entry), { ppid: Number(fields[1]), ticks });
    } catch {
      // Gone while reading.
    }
  }
  const inTree = (pid: number): boolean => {
    for (let at = pid, hops = 0; at > 1 && hops < 64; hops += 1) {
      if (roots.includes(at)) return true;
      at = stats.get(at)?.ppid ?? 0;
    }
    return false;
  };
  let ticks = 0;
  for (const [pid, stat] of stats) if (inTree(pid)) ticks += stat.ticks;
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** MemTotal - MemAvailable of the machine, in MiB. */
function usedMemoryMiB(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return Math.round((kib('MemTotal') - kib('MemAvailable')) / 1024);
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
