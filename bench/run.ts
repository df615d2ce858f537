/**
 * Benchmark of the ways to put a new release on running gunicorn hosts (`npm run bench`; needs
 * root, like the e2e sandbox). Not a test: it measures and reports, it asserts nothing.
 *
 * One sandbox per gunicorn version (Debian's 20.1; 21.2, 23.0 and 26.1 from a virtualenv, as in
 * the e2e matrix; BENCH_GUNICORN=23.0,26.1 picks some): 3 hosts (network namespaces with sshd
 * and gunicorn, 2 sync workers each, an app that takes 4 s to import) behind HAProxy, and the
 * same steady load through HAProxy (100 req/s over 10 connections) for every run. Side by side:
 *   manual  the seeds' method, on every host in turn: `ln -sfn releases/<new> current` then
 *           `kill -HUP $(cat pidfile)` (no import check, no readiness gate, no rollback);
 *   hup     the action with strategy hup;
 *   hup-drain the action with strategy hup behind HAProxy's drain (lb: haproxy, lb-drain: auto;
 *           traffic gate over 3 s per host);
 *   usr2    the action with strategy usr2;
 *   rolling the action with strategy rolling;
 * each with a good release, a release that fails to import, and a release that imports fine
 * (so the action's import check passes it) but whose workers fail to boot under gunicorn.
 *
 * For each run: failed requests and p50/p99/max latency of the requests made during the
 * deploy window, the deploy's wall time, and what every host serves afterwards. The window
 * starts 1 s before the deploy and ends 2 s after it; for the manual method the deploy ends
 * when every host serves the new release or its master is gone (the HUPs themselves return at
 * once). A run that leaves a master halted is followed by a restart of gunicorn, outside any
 * window, so the next run starts clean.
 *
 * Writes bench/results/latest.md (the table, the machine) and bench/results/latest.json.
 *
 * `npm run bench -- --uwsgi` measures uWSGI instead (the fixture's uwsgi.ini: 2 lazy-apps
 * workers, master FIFO, stats server) and writes latest-uwsgi.{md,json}:
 *   touch        manual: `ln -sfn releases/<new> current`, then touch the `touch-reload` file
 *                (uWSGI's graceful reload of all workers);
 *   touch-chain  the same with `touch-chain-reload` (uWSGI's chain reload, one worker at a time);
 *   chain, reload  the action with those strategies;
 * the boot failure being a release that imports fine but has no app inside uWSGI.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRelease, type AppOptions } from '../test/support/app-fixture.js';
import { sleep, waitFor } from '../test/support/proc.js';
import { runAction, sandboxInputs } from '../test/support/run-action.js';
import { TESTED_GUNICORN_VERSIONS } from '../src/servers/gunicorn/gunicorn-versions.js';
import { GUNICORN_PGREP, startServingSandbox, type GunicornVersion, type Sandbox } from '../test/support/sandbox.js';
import { fleetBench } from './fleet.js';
import { systemdBench } from './systemd.js';
import { canaryBench } from './canary.js';
import { startMeter, type MeterReport } from './load-meter.js';

const HOSTS = 3;
const WORKERS = 2;
const BOOT_SECONDS = 4;
const LOAD = { rate: 100, connections: 10, maxSeconds: 240 } as const;
const BEFORE_MS = 1000;
const AFTER_MS = 2000;
/** How long the manual method gets to converge before it counts as not converged. */
const MANUAL_CONVERGE_MS = 30_000;
const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

/** The gunicorn versions to measure: BENCH_GUNICORN (comma separated), else every tested one. */
function benchVersions(): GunicornVersion[] {
  const wanted = process.env.BENCH_GUNICORN?.split(',').map((version) => version.trim());
  if (!wanted) return [...TESTED_GUNICORN_VERSIONS];
  const unknown = wanted.filter((version) => !(TESTED_GUNICORN_VERSIONS as readonly string[]).includes(version));
  if (unknown.length) throw new Error(`BENCH_GUNICORN: unknown version ${unknown.join(', ')} (known: ${TESTED_GUNICORN_VERSIONS.join(', ')})`);
  return wanted as GunicornVersion[];
}

type Method = 'manual' | 'hup' | 'hup-drain' | 'usr2' | 'rolling' | 'touch' | 'touch-chain' | 'chain' | 'reload';
const SERVER: 'gunicorn' | 'uwsgi' = process.argv.includes('--uwsgi') ? 'uwsgi' : 'gunicorn';
const ALL_METHODS: readonly Method[] = SERVER === 'uwsgi' ? ['touch', 'touch-chain', 'chain', 'reload'] : ['manual', 'hup', 'hup-drain', 'usr2', 'rolling'];
/** BENCH_METHODS=hup,hup-drain measures some methods only, into latest-partial.{md,json}. */
const PICKED = process.env.BENCH_METHODS?.split(',').map((method) => method.trim());
const METHODS: readonly Method[] = PICKED ? ALL_METHODS.filter((method) => PICKED.includes(method)) : ALL_METHODS;
/** BENCH_KINDS=good likewise picks release kinds. */
const PICKED_KINDS = process.env.BENCH_KINDS?.split(',').map((kind) => kind.trim());
/** The action's strategy and extra inputs of each action method. */
const ACTION: Partial<Record<Method, { strategy: string; drain?: boolean }>> = {
  hup: { strategy: 'hup' },
  'hup-drain': { strategy: 'hup', drain: true },
  usr2: { strategy: 'usr2' },
  rolling: { strategy: 'rolling' },
  chain: { strategy: 'chain' },
  reload: { strategy: 'reload' },
};
/** Methods run by hand (no action): what they run on every host after switching `current`. */
const MANUAL: Partial<Record<Method, string>> = {
  manual: 'kill -HUP $(cat run/gunicorn.pid)',
  touch: 'touch run/touch-reload',
  'touch-chain': 'touch run/touch-chain-reload',
};
type Kind = 'good' | 'import-error' | 'boot-failure';

interface Row {
  /** `gunicorn 23.0`, or `uWSGI`. */
  server: string;
  method: Method;
  release: Kind;
  version: string;
  /** The action's `status` output; for manual: converged / halted / not-converged. */
  outcome: string;
  requests: number;
  failed: number;
  statuses: Record<string, number>;
  latencyMs: { p50: number; p99: number; max: number };
  /** Responses that took 1 s or more. */
  slow: number;
  deploySeconds: number;
  /** What each host serves after the run: a version, or 'down'. */
  hostsServe: string[];
  /** The version every host should serve after the run. */
  expected: string;
  rightVersion: boolean;
  versionsServed: Record<string, number>;
  note: string;
}

const KINDS: Record<Kind, Partial<AppOptions>> = {
  good: {},
  'import-error': { importError: true },
  'boot-failure': SERVER === 'uwsgi' ? { failOnlyUnderUwsgi: true } : { failOnlyUnderGunicorn: true },
};

const KIND_LABEL: Record<Kind, string> = {
  good: 'good',
  'import-error': 'import error',
  'boot-failure': SERVER === 'uwsgi' ? 'no app inside uwsgi' : 'boots only outside gunicorn',
};

/** The server a row was measured on: `gunicorn 23.0`, or `uWSGI` (Debian's only). */
function serverLabel(gunicorn: GunicornVersion | undefined): string {
  return gunicorn ? `gunicorn ${gunicorn}` : 'uWSGI';
}

async function main(): Promise<void> {
  const started = new Date();
  const machine = describeMachine();
  console.log(`bench: ${machine.summary}`);
  const rows: Row[] = [];
  // uWSGI has one version here (Debian's); gunicorn is measured per version.
  const versions: (GunicornVersion | undefined)[] = SERVER === 'uwsgi' ? [undefined] : benchVersions();
  for (const gunicorn of versions) rows.push(...(await benchVersion(gunicorn)));

  const markdown = renderMarkdown(rows, started, machine);
  console.log(`\n${markdown}`);
  await mkdir(RESULTS, { recursive: true });
  const name = PICKED || PICKED_KINDS ? 'latest-partial' : SERVER === 'uwsgi' ? 'latest-uwsgi' : 'latest';
  await writeFile(join(RESULTS, `${name}.md`), markdown);
  await writeFile(
    join(RESULTS, `${name}.json`),
    `${JSON.stringify({ date: started.toISOString(), machine, setup: { hosts: HOSTS, workers: WORKERS, bootSeconds: BOOT_SECONDS, load: LOAD, windowMs: { before: BEFORE_MS, after: AFTER_MS } }, rows }, null, 2)}\n`,
  );
  console.log(`bench: wrote ${join(RESULTS, `${name}.md`)} and ${name}.json`);
}

/** Every method and release kind on one sandbox running gunicorn `gunicorn`. */
async function benchVersion(gunicorn: GunicornVersion | undefined): Promise<Row[]> {
  const sources: string[] = [];
  const rows: Row[] = [];
  let sb: Sandbox | undefined;
  try {
    // HAProxy on its own host (as in production), so hup-drain can reach its admin socket over SSH.
    sb = await startServingSandbox({ hosts: HOSTS, workers: WORKERS, gunicorn, version: 'v1', app: { bootSeconds: BOOT_SECONDS }, server: SERVER, lbHost: true });
    console.log(`bench: sandbox ${sb.id} serving v1 on ${HOSTS} hosts with ${serverLabel(gunicorn)}`);
    let serving = 'v1';
    let counter = 1;
    for (const kind of (['good', 'import-error', 'boot-failure'] as const).filter((candidate) => !PICKED_KINDS || PICKED_KINDS.includes(candidate))) {
      for (const method of METHODS) {
        counter += 1;
        const version = kind === 'good' ? `v${counter}` : `${kind === 'import-error' ? 'broken' : 'crash'}${counter}`;
        const app: AppOptions = { version, bootSeconds: BOOT_SECONDS, workers: WORKERS, ...KINDS[kind] };
        const row = { server: serverLabel(gunicorn), ...(await benchOne(sb, { method, kind, app, serving, sources })) };
        rows.push(row);
        console.log(`bench: ${row.server} ${method} ${kind} → ${row.outcome}; failed ${row.failed}/${row.requests}; max ${row.latencyMs.max} ms; ${row.deploySeconds} s; hosts ${row.hostsServe.join(' ')}`);
        if (row.rightVersion && kind === 'good') serving = version;
        await restartHalted(sb, serving);
      }
    }
  } finally {
    await sb?.stop();
    await Promise.all(sources.map((dir) => rm(dir, { recursive: true, force: true })));
  }
  return rows;
}

/** One deploy under load, measured. */
async function benchOne(
  sb: Sandbox,
  run: { method: Method; kind: Kind; app: AppOptions; serving: string; sources: string[] },
): Promise<Omit<Row, 'server'>> {
  const { method, kind, app, serving } = run;
  const version = app.version;
  let deploy: () => Promise<{ outcome: string; note: string }>;
  const manual = MANUAL[method];
  if (manual) {
    // Staged beforehand, outside the window, as a deploy script would have copied it.
    for (const host of sb.hosts) {
      const dir = join(host.appDirBacking, 'releases', version);
      await writeRelease(dir, { ...app, appDir: sb.appDir });
      await writeFile(join(dir, 'REVISION'), `${version}\n`);
    }
    deploy = () => manualDeploy(sb, version, manual);
  } else {
    const source = await mkdtemp(join(tmpdir(), `gd-bench-${version}-`));
    run.sources.push(source);
    await writeRelease(source, SERVER === 'uwsgi' ? { ...app, appDir: sb.appDir } : app);
    deploy = async () => {
      const action = ACTION[method] ?? { strategy: method };
      const lb: Record<string, string> = action.drain && sb.lb ? { lb: 'haproxy', 'lb-host': sb.lb.ip, 'lb-backend': sb.lb.backend, 'lb-drain': 'auto', 'lb-traffic-gate-window': '3' } : { lb: '' };
      const result = await runAction(
        { ...sandboxInputs(sb), source, release: version, server: SERVER, strategy: action.strategy, 'health-interval': '0.5', 'health-successes': '3', 'health-timeout': '30', ...lb },
        { timeoutMs: 300_000 },
      );
      return { outcome: result.outputs.status ?? `exit ${result.code}`, note: annotations(result.stdout) };
    };
  }

  await sb.waitForLb({ timeoutMs: 60_000 });
  await sleep(1000);
  const load = startMeter({ url: sb.lbUrl, ...LOAD });
  let report: MeterReport;
  let deployed: { outcome: string; note: string };
  let seconds: number;
  try {
    await sleep(BEFORE_MS);
    const t0 = performance.now();
    deployed = await deploy();
    seconds = (performance.now() - t0) / 1000;
    await sleep(AFTER_MS);
  } finally {
    report = await load.stop();
  }
  const hostsServe = await Promise.all(sb.hosts.map(async (host) => {
    const probe = await sb.probe(host.index);
    return probe.status === 200 ? (probe.version ?? '?') : 'down';
  }));
  const expected = kind === 'good' ? version : serving;
  return {
    method,
    release: kind,
    version,
    outcome: deployed.outcome,
    requests: report.requests,
    failed: report.failed,
    statuses: report.statuses,
    latencyMs: report.latencyMs,
    slow: report.slow,
    deploySeconds: Math.round(seconds * 10) / 10,
    hostsServe,
    expected,
    rightVersion: hostsServe.every((served) => served === expected),
    versionsServed: report.versions,
    note: deployed.note,
  };
}

/**
 * The seeds' method: on each host in turn, switch `current` and HUP the master. Done when
 * every host serves the release or has no master left (a worker that cannot boot halts it).
 */
async function manualDeploy(sb: Sandbox, version: string, reload: string): Promise<{ outcome: string; note: string }> {
  for (const host of sb.hosts) {
    const result = await sb.exec(host.index, `cd ${sb.appDir} && ln -sfn releases/${version} current && ${reload}`);
    if (result.code !== 0) throw new Error(`manual deploy on ${host.name}: ${result.stderr}`);
  }
  const state = async () =>
    Promise.all(
      sb.hosts.map(async (host) => {
        if (!(await masterAlive(sb, host.index))) return 'halted';
        const probe = await sb.probe(host.index);
        return probe.status === 200 && probe.version === version ? 'serving' : 'waiting';
      }),
    );
  let last: string[] = [];
  try {
    await waitFor('every host to serve the release or halt', async () => {
      last = await state();
      return last.every((item) => item !== 'waiting');
    }, { timeoutMs: MANUAL_CONVERGE_MS, intervalMs: 100 });
  } catch {
    return { outcome: 'not-converged', note: `hosts: ${last.join(', ')} after ${MANUAL_CONVERGE_MS / 1000} s` };
  }
  const halted = last.filter((item) => item === 'halted').length;
  return halted
    ? { outcome: 'halted', note: `${halted} of ${HOSTS} masters halted (workers failed to boot): those hosts serve nothing until ${SERVER} is restarted by hand` }
    : { outcome: 'converged', note: '' };
}

/** The action's ::error:: and ::warning:: lines, first line of each, without the run's paths and addresses. */
function annotations(stdout: string): string {
  return [...stdout.matchAll(/^::(error|warning)::(.*)$/gm)]
    .map(([, kind, text = '']) => {
      const message = (text.split('%0A')[0] ?? '').replace(/%25/g, '%').replace(/\/tmp\/gd-\w+/g, '…').replace(/root@[\d.]+\.(\d+)/g, 'h$1');
      return `${kind}: ${message.length > 180 ? `${message.slice(0, 180)}…` : message}`;
    })
    .join(' / ');
}

async function masterAlive(sb: Sandbox, host: number): Promise<boolean> {
  return (await sb.exec(host, `p=$(cat ${sb.appDir}/run/${SERVER}.pid 2>/dev/null) && [ -n "$p" ] && kill -0 "$p"`)).code === 0;
}

/**
 * Restarts the server on every host whose master is gone, on `release`, so the next run starts
 * clean. A uWSGI master outlives a broken release (its workers serve errors without an app):
 * such a host gets `current` back and a graceful reload, as an operator would do.
 */
async function restartHalted(sb: Sandbox, release: string): Promise<void> {
  for (const host of sb.hosts) {
    if (await masterAlive(sb, host.index)) {
      const probe = await sb.probe(host.index);
      if (SERVER === 'uwsgi' && (probe.status !== 200 || probe.version !== release)) {
        console.log(`bench: ${host.name} serves ${probe.status} ${probe.version ?? ''}; back to ${release} with a graceful reload`);
        await sb.exec(host.index, `cd ${sb.appDir} && ln -sfn releases/${release} current && touch run/touch-reload`);
        await waitFor(`${host.name} to serve ${release}`, async () => (await sb.probe(host.index)).version === release, { timeoutMs: 60_000, intervalMs: 250 });
      }
      continue;
    }
    console.log(`bench: ${host.name} has no master; restarting ${SERVER} on ${release}`);
    await waitFor(`the last ${SERVER} process on ${host.name} to exit`, async () => (await sb.exec(host.index, SERVER === 'uwsgi' ? `pgrep -f '[u]wsgi' >/dev/null` : `pgrep -f ${GUNICORN_PGREP} >/dev/null`)).code !== 0, { timeoutMs: 30_000 });
    await sb.exec(host.index, `cd ${sb.appDir} && ln -sfn releases/${release} current && rm -f run/${SERVER}.pid run/${SERVER}.pid.2`);
    await (SERVER === 'uwsgi' ? sb.startUwsgi(host.index) : sb.startGunicorn(host.index));
  }
  await sb.waitForLb({ timeoutMs: 60_000 });
}

interface Machine {
  summary: string;
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  gunicorn: string;
  uwsgi: string;
  haproxy: string;
  node: string;
  /** The commit measured, and whether dist/ (what runs) differs from it. */
  commit: string;
}

function describeMachine(): Machine {
  const text = (file: string, args: string[]) => {
    try {
      return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (error) {
      return `unknown (${(error as Error).message.split('\n')[0]})`;
    }
  };
  const machine = {
    nproc: Number(text('nproc', [])),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: text('uname', ['-r']),
    gunicorn: text('/usr/bin/gunicorn', ['--version']).replace(/^gunicorn \(version (.*)\)$/, '$1'),
    uwsgi: text('/usr/bin/uwsgi', ['--version']),
    haproxy: text('/usr/sbin/haproxy', ['-v']).split('\n')[0]?.replace(/^HAProxy version (\S+).*/, '$1') ?? 'unknown',
    node: process.version,
    commit: `${text('git', ['rev-parse', '--short', 'HEAD'])}${text('git', ['status', '--porcelain', '--', 'dist']) ? ' (dist/ modified)' : ''}`,
  };
  return { ...machine, summary: `${machine.nproc} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, gunicorn ${machine.gunicorn}, HAProxy ${machine.haproxy}, Node ${machine.node}` };
}

function renderMarkdown(rows: Row[], date: Date, machine: Machine): string {
  const label: Record<Method, string> = {
    manual: 'manual `ln -sfn` + `kill -HUP`',
    hup: 'action `hup`',
    'hup-drain': 'action `hup` + HAProxy drain',
    usr2: 'action `usr2`',
    rolling: 'action `rolling`',
    touch: 'manual `ln -sfn` + touch-reload',
    'touch-chain': 'manual `ln -sfn` + touch-chain-reload',
    chain: 'action `chain`',
    reload: 'action `reload`',
  };
  const lines = [
    SERVER === 'uwsgi' ? '# uWSGI reload benchmark (`npm run bench -- --uwsgi`)' : '# Gunicorn reload benchmark',
    '',
    `Run ${date.toISOString()} with \`npm run bench\` (bench/run.ts) on commit ${machine.commit}.`,
    '',
    `Machine: ${machine.nproc} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB memory, Linux ${machine.kernel}, ` +
      `${SERVER === 'uwsgi' ? `uWSGI ${machine.uwsgi} (Debian)` : `gunicorn 20.1 from Debian (${machine.gunicorn}) and upstream releases in a virtualenv with setproctitle`}, HAProxy ${machine.haproxy}, Node ${machine.node}.`,
    '',
    `Setup: ${HOSTS} sandbox hosts (network namespaces, sshd, ${SERVER === 'uwsgi' ? `daemonized uWSGI with ${WORKERS} lazy-apps workers` : `daemonized gunicorn with ${WORKERS} sync workers`}, ` +
      `an app that sleeps ${BOOT_SECONDS} s at import) behind HAProxy on its own namespaced host (health check GET /health/ready every 500 ms, ` +
      `fall 2 / rise 2, retries on connection failure). Load: ${LOAD.rate} req/s over ${LOAD.connections} connections ` +
      `through HAProxy (autocannon), GET /. Window: ${BEFORE_MS / 1000} s before the deploy to ${AFTER_MS / 1000} s after it. ` +
      'Deploy time: the action run (connect, upload, import check on every host, reload and readiness gate host by host); ' +
      'for the manual methods, from the first HUP or touch until every host serves the new release or has no master. ' +
      'Action gate: 3 passes 0.5 s apart, 30 s timeout.',
    '',
    '| server | method | release | result | failed / requests | p50 ms | p99 ms | max ms | ≥ 1 s | deploy s | hosts serve after | right version |',
    '|---|---|---|---|---|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.server} | ${label[row.method]} | ${KIND_LABEL[row.release]} | ${row.outcome} | ${row.failed} / ${row.requests} | ${row.latencyMs.p50} | ${row.latencyMs.p99} | ${row.latencyMs.max} | ${row.slow} | ${row.deploySeconds} | ${row.hostsServe.join(', ')} | ${row.rightVersion ? 'yes' : `no (expected ${row.expected})`} |`,
    );
  }
  const notes = rows.filter((row) => row.note || row.failed);
  if (notes.length) {
    lines.push('', 'Notes (the action\'s own error and warnings, shortened):');
    for (const row of notes) {
      const statuses = row.failed ? ` Responses by status: ${JSON.stringify(row.statuses)}.` : '';
      const down = row.hostsServe.map((served, i) => (served === 'down' ? `h${i + 1}` : '')).filter(Boolean);
      const misreport =
        !MANUAL[row.method] && row.outcome === 'rolled-back' && down.length
          ? `**status says rolled-back, yet ${down.join(', ')} serve${down.length === 1 ? 's' : ''} nothing (its master halted; the rollback failed there).** `
          : '';
      lines.push(`- ${row.server}, ${label[row.method]}, ${KIND_LABEL[row.release]}: ${misreport}${row.note || row.outcome}.${statuses}`);
    }
  }
  lines.push(
    '',
    '"right version": every host serves the new release after a good one, the previous release after a broken one ' +
      `("down" = nothing answers on the host). A run that left a master halted (or, for uWSGI, hosts serving errors) was followed by a restart of ${SERVER} ` +
      '(for uWSGI: `current` back and a graceful reload) outside the window. Raw numbers: latest.json.',
    '',
  );
  return lines.join('\n');
}

// `npm run bench -- fleet ...`: the fleet benchmark (bench/fleet.ts); `-- systemd`: under real
// systemd (bench/systemd.ts; `-- systemd uvicorn` only the setups naming uvicorn); `-- canary`:
// a 500-ing canary with and without lb-canary-weight (bench/canary.ts); otherwise the reload benchmark.
if (process.argv[2] === 'fleet') await fleetBench(process.argv.slice(3));
else if (process.argv[2] === 'systemd') await systemdBench(process.argv[3]);
else if (process.argv[2] === 'canary') await canaryBench();
else await main();
