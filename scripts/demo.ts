/**
 * The demo behind `bash scripts/demo.sh`: a real deploy of v1 → v2 to three sandbox hosts
 * under load, run exactly as a GitHub runner runs the action.
 */
import { startLoad } from '../test/support/load.js';
import { runAction, sandboxInputs } from '../test/support/run-action.js';
import { startServingSandbox } from '../test/support/sandbox.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRelease } from '../test/support/app-fixture.js';

const strategy = process.argv.find((arg) => arg.startsWith('--strategy='))?.split('=')[1] ?? 'usr2';

async function main(): Promise<void> {
  console.log('Starting 3 hosts (sshd + gunicorn serving v1 in network namespaces) behind HAProxy…');
  const sandbox = await startServingSandbox({ hosts: 3, version: 'v1', app: { bootSeconds: 2 } });
  const source = await mkdtemp(join(tmpdir(), 'gd-demo-v2-'));
  await writeRelease(source, { version: 'v2', bootSeconds: 2 });
  try {
    console.log(`Hosts: ${sandbox.hosts.map((host) => host.ip).join(', ')}; load balancer ${sandbox.lbUrl}`);
    const load = startLoad({ url: sandbox.lbUrl, rate: 100, connections: 10, maxSeconds: 300 });
    console.log(`Deploying v2 with strategy ${strategy} through node dist/index.js, under 100 req/s…`);
    const started = Date.now();
    const result = await runAction({ ...sandboxInputs(sandbox), source, release: 'v2', strategy, 'health-interval': '0.5' });
    const seconds = (Date.now() - started) / 1000;
    const report = await load.stop();
    process.stdout.write(result.stdout.replace(/^::(group|endgroup)::/gm, '').replace(/^::add-mask::.*\n/gm, ''));
    const served = await Promise.all(sandbox.hosts.map(async (host) => `${host.name}: ${(await sandbox.probe(host.index)).version}`));
    console.log('\n── Demo report ─────────────────────────────');
    console.log(`status              ${result.outputs.status ?? '(none)'} (exit ${result.code}) in ${seconds.toFixed(1)} s`);
    console.log(`requests            ${report.requests}, failed ${report.failed}`);
    console.log(`latency ms          p50 ${report.latency.p50}, p99 ${report.latency.p99}, max ${report.latency.max}`);
    console.log(`versions served     ${JSON.stringify(report.versions)}`);
    console.log(`hosts now serve     ${served.join(', ')}`);
    if (result.code !== 0 || report.failed !== 0) process.exitCode = 1;
  } finally {
    await rm(source, { recursive: true, force: true });
    await sandbox.stop();
    console.log('Sandbox removed.');
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
