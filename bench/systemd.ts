/**
 * `npm run bench -- systemd`: the action against gunicorn under a real systemd (PID 1 of each
 * sandbox host), with the units users run. Not a test: it measures and reports.
 *
 * Two sandboxes of 3 hosts behind HAProxy, 2 sync workers each, an app that takes 2 s to
 * import, the same steady load through HAProxy (100 req/s over 10 connections):
 *   notify+socket  gunicorn.service Type=notify with gunicorn.socket (gunicorn's docs):
 *                  strategies rolling (what auto picks there) and hup;
 *   forking        gunicorn.service Type=forking with PIDFile= (daemonized gunicorn):
 *                  strategy usr2 (what auto picks there; systemd follows the new master);
 *   both again with uvicorn's worker (uvicorn.workers.UvicornWorker, the fixture's ASGI app).
 * For each deploy of a good release: failed requests, p50/p99/max latency in the deploy window
 * (1 s before to 2 s after), the deploy's wall time, and the release every host serves.
 * Writes bench/results/systemd.{md,json}. `npm run bench -- systemd uvicorn` runs only the setups
 * whose name contains `uvicorn` and keeps the other rows of systemd.json.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRelease, type AppOptions } from '../test/support/app-fixture.js';
import { sleep } from '../test/support/proc.js';
import { runAction, sandboxInputs } from '../test/support/run-action.js';
import { startServingSandbox, type GunicornServiceOptions, type Sandbox } from '../test/support/sandbox.js';
import { startMeter, type MeterReport } from './load-meter.js';

const HOSTS = 3;
const BOOT_SECONDS = 2;
const LOAD = { rate: 100, connections: 10, maxSeconds: 240 } as const;
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

interface SystemdRow {
  unit: string;
  strategy: string;
  chosen: string;
  outcome: string;
  requests: number;
  failed: number;
  latencyMs: { p50: number; p99: number; max: number };
  deploySeconds: number;
  hostsServe: string[];
}

const UVICORN: Partial<AppOptions> = { workerClass: 'uvicorn.workers.UvicornWorker' };

const SETUPS: { unit: string; service: GunicornServiceOptions; app?: Partial<AppOptions>; strategies: string[] }[] = [
  { unit: 'notify+socket', service: { type: 'notify', socket: true }, strategies: ['auto', 'hup'] },
  { unit: 'forking', service: { type: 'forking' }, strategies: ['auto'] },
  { unit: 'notify+socket, uvicorn workers', service: { type: 'notify', socket: true }, app: UVICORN, strategies: ['auto'] },
  { unit: 'forking, uvicorn workers', service: { type: 'forking' }, app: UVICORN, strategies: ['auto'] },
];

export async function systemdBench(only?: string): Promise<void> {
  const started = new Date();
  const picked = SETUPS.filter((setup) => !only || setup.unit.includes(only));
  if (picked.length === 0) throw new Error(`bench systemd: no setup names '${only}' (setups: ${SETUPS.map((setup) => setup.unit).join('; ')})`);
  // The rows of setups not run this time stay, from the last full run.
  const kept = only ? await previousRows().then((rows) => rows.filter((row) => !picked.some((setup) => setup.unit === row.unit))) : [];
  const measured: SystemdRow[] = [];
  let counter = 1;
  for (const setup of picked) {
    const sb = await startServingSandbox({ hosts: HOSTS, workers: 2, systemd: true, version: 'v1', app: { bootSeconds: BOOT_SECONDS, ...setup.app }, service: setup.service });
    const sources: string[] = [];
    try {
      for (const strategy of setup.strategies) {
        counter += 1;
        const row = await deployOnce(sb, `v${counter}`, strategy, sources, setup.app);
        measured.push({ unit: setup.unit, ...row });
        console.log(`bench systemd: ${setup.unit} ${strategy} (${row.chosen}) → ${row.outcome}; failed ${row.failed}/${row.requests}; max ${row.latencyMs.max} ms; ${row.deploySeconds} s`);
      }
    } finally {
      await sb.stop();
      await Promise.all(sources.map((dir) => rm(dir, { recursive: true, force: true })));
    }
  }
  const order = (row: SystemdRow) => SETUPS.findIndex((setup) => setup.unit === row.unit);
  const rows = [...kept, ...measured].sort((a, b) => order(a) - order(b));
  const table = [
    `# graceful-deploy under systemd (${started.toISOString().slice(0, 10)})`,
    '',
    `${HOSTS} hosts with real systemd 252 as PID 1, gunicorn 20.1 (2 workers, sync unless said, ${BOOT_SECONDS} s import) behind HAProxy, ${LOAD.rate} req/s through HAProxy during each deploy.`,
    '',
    '| unit | strategy | chosen | outcome | failed / requests | p50 / p99 / max latency (ms) | deploy (s) | hosts serve |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (row) =>
        `| ${row.unit} | ${row.strategy} | ${row.chosen} | ${row.outcome} | ${row.failed} / ${row.requests} | ${row.latencyMs.p50} / ${row.latencyMs.p99} / ${row.latencyMs.max} | ${row.deploySeconds} | ${row.hostsServe.join(' ')} |`,
    ),
    '',
  ].join('\n');
  console.log(`\n${table}`);
  await mkdir(RESULTS, { recursive: true });
  await writeFile(join(RESULTS, 'systemd.md'), table);
  await writeFile(join(RESULTS, 'systemd.json'), `${JSON.stringify({ date: started.toISOString(), hosts: HOSTS, bootSeconds: BOOT_SECONDS, load: LOAD, rows }, null, 2)}\n`);
}

async function previousRows(): Promise<SystemdRow[]> {
  try {
    return (JSON.parse(await readFile(join(RESULTS, 'systemd.json'), 'utf8')) as { rows: SystemdRow[] }).rows;
  } catch {
    return [];
  }
}

async function deployOnce(sb: Sandbox, version: string, strategy: string, sources: string[], app: Partial<AppOptions> = {}): Promise<Omit<SystemdRow, 'unit'>> {
  const source = await mkdtemp(join(tmpdir(), `gd-bench-systemd-${version}-`));
  sources.push(source);
  await writeRelease(source, { ...app, version, bootSeconds: BOOT_SECONDS, workers: 2 });
  // As a checkout is: the app's user (www-data) reads what root uploads.
  await chmod(source, 0o755);
  await sb.waitForLb({ timeoutMs: 60_000 });
  const load = startMeter({ url: sb.lbUrl, ...LOAD });
  let result: Awaited<ReturnType<typeof runAction>>;
  let seconds: number;
  let report: MeterReport;
  try {
    await sleep(1000);
    const t0 = performance.now();
    result = await runAction(
      { ...sandboxInputs(sb), source, release: version, service: 'gunicorn.service', strategy, 'health-interval': '0.5', 'health-successes': '3', 'health-timeout': '60' },
      { timeoutMs: 300_000 },
    );
    seconds = (performance.now() - t0) / 1000;
    await sleep(2000);
  } finally {
    report = await load.stop();
  }
  const hostsServe = await Promise.all(sb.hosts.map(async (host) => (await sb.probe(host.index)).version ?? 'down'));
  const chosen = /strategy auto chose (\w+)/.exec(result.stdout)?.[1] ?? strategy;
  return { strategy, chosen, outcome: result.outputs.status ?? `exit ${result.code}`, requests: report.requests, failed: report.failed, latencyMs: report.latencyMs, deploySeconds: Math.round(seconds * 10) / 10, hostsServe };
}
