/**
 * Proves the end-to-end sandbox itself (test/support/sandbox.ts): hosts, SSH with pinned host
 * keys, per-host app dirs, HAProxy, the load generator and a teardown that leaves nothing.
 * Needs root; run test/sandbox/install-packages.sh first on a fresh machine.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoad } from '../support/load.js';
import { processRunning, run, sleep, waitFor } from '../support/proc.js';
import { GUNICORN_PGREP, startSandbox, startServingSandbox, type Sandbox } from '../support/sandbox.js';

function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `The sandbox e2e tests must run as root (network namespaces, mounts, sshd); uid is ${process.getuid?.()}. ` +
        'Run them as root, e.g. `sudo npx vitest run test/e2e/sandbox.test.ts`.',
    );
  }
}

/** The system ssh client against one host, optionally with another known_hosts file. */
function ssh(sb: Sandbox, host: number, command: string, knownHostsFile?: string) {
  // ssh keeps the first value it gets for an option: replace it, don't append a second one.
  const args = sb.sshArgs(host).map((arg) => (knownHostsFile && arg.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${knownHostsFile}` : arg));
  return run('ssh', [...args, command], { timeoutMs: 20_000 });
}

/** Everything of a run that must disappear with stop(). */
async function remnants(sb: Sandbox, pids: number[]): Promise<string[]> {
  const found: string[] = [];
  const netns = (await run('ip', ['netns', 'list'])).stdout;
  if (netns.includes(`gd${sb.id}`)) found.push(`netns: ${netns.trim()}`);
  const links = (await run('ip', ['-o', 'link', 'show'])).stdout;
  if (links.includes(`gd${sb.id}`)) found.push('links named gd<id>');
  if (existsSync(sb.root)) found.push(`dir ${sb.root}`);
  const alive = pids.filter(processRunning);
  if (alive.length) found.push(`processes ${alive.join(' ')}`);
  const ps = (await run('ps', ['-eo', 'pid,args'])).stdout.split('\n').filter((line) => line.includes(sb.root));
  if (ps.length) found.push(`processes mentioning ${sb.root}: ${ps.join('; ')}`);
  return found;
}

describe('sandbox: 3 serving hosts behind HAProxy', () => {
  let sb: Sandbox;
  let startMs = 0;

  beforeAll(async () => {
    requireRoot();
    const t0 = Date.now();
    sb = await startServingSandbox({ hosts: 3 });
    startMs = Date.now() - t0;
    console.log(`sandbox ${sb.id} (${sb.subnet}) serving in ${startMs} ms`);
  });

  afterAll(async () => {
    await sb?.stop();
  });

  it('starts 3 hosts, each in its own namespaces with its own address', async () => {
    expect(sb.hosts.map((h) => h.name)).toEqual(['h1', 'h2', 'h3']);
    expect(new Set(sb.hosts.map((h) => h.ip)).size).toBe(3);
    const netns = (await run('ip', ['netns', 'list'])).stdout;
    for (const host of sb.hosts) {
      expect(netns).toContain(`gd${sb.id}${host.name}`);
      const addr = await sb.exec(host.index, 'ip -4 -o addr show dev eth0; ip -o link show lo');
      expect(addr.code).toBe(0);
      expect(addr.stdout).toContain(`${host.ip}/24`);
      expect(addr.stdout).toMatch(/lo:.*UP/);
      // Its own pid namespace: only this host's processes, its init is PID 1.
      const ps = await sb.exec(host.index, 'ps -eo pid,args');
      expect(ps.stdout).toMatch(/^\s*1 .*reaper\.py/m);
      expect(ps.stdout.match(/gunicorn: master/g)).toHaveLength(1);
      // No route out of the sandbox network.
      const routes = await sb.exec(host.index, 'ip -4 route show');
      expect(routes.stdout).not.toMatch(/default/);
    }
    expect(startMs).toBeLessThan(30_000);
  });

  it('exec reports exit codes, stdout and stderr', async () => {
    const result = await sb.exec(2, 'echo out; echo err >&2; exit 7');
    expect(result).toEqual({ stdout: 'out\n', stderr: 'err\n', code: 7 });
    await expect(sb.exec(2, 'sleep 5', { timeoutMs: 300 })).rejects.toThrow(/timed out after 300 ms/);
  });

  it('accepts ssh with the pinned known_hosts and the sandbox key', async () => {
    for (const host of sb.hosts) {
      const result = await ssh(sb, host.index, `cat ${sb.appDir}/current/REVISION; echo "$HOME"; command -v python3`);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toBe('v1\n/root\n/usr/bin/python3\n');
    }
    expect(sb.knownHosts.trim().split('\n')).toHaveLength(3);
    for (const line of sb.knownHosts.trim().split('\n')) expect(line).toMatch(/^10\.\d+\.\d+\.\d+ ssh-ed25519 AAAA\S+$/);
    expect(sb.privateKey).toContain('BEGIN OPENSSH PRIVATE KEY');
  });

  it('refuses ssh when known_hosts pins another key or does not know the host', async () => {
    const [h1, h2] = sb.hosts as [Sandbox['hosts'][0], Sandbox['hosts'][0]];
    const h2Key = sb.knownHosts.split('\n').find((line) => line.startsWith(`${h2.ip} `))!.split(' ').slice(1).join(' ');
    const wrong = join(sb.root, 'known_hosts.wrong');
    await writeFile(wrong, `${h1.ip} ${h2Key}\n`);
    const changed = await ssh(sb, 1, 'echo should-not-run', wrong);
    expect(changed.code).toBe(255);
    expect(changed.stdout).not.toContain('should-not-run');
    expect(changed.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);

    const empty = join(sb.root, 'known_hosts.empty');
    await writeFile(empty, '');
    const unknown = await ssh(sb, 1, 'echo should-not-run', empty);
    expect(unknown.code).toBe(255);
    expect(unknown.stdout).not.toContain('should-not-run');
    expect(unknown.stderr).toMatch(/Host key verification failed/);
  });

  it('gives every host its own app dir at the same path', async () => {
    const marker = `${sb.appDir}/marker-${Date.now()}`;
    const write = await ssh(sb, 1, `echo h1 > ${marker}`);
    expect(write.code).toBe(0);
    expect((await sb.exec(1, `cat ${marker}`)).stdout).toBe('h1\n');
    expect((await ssh(sb, 1, `cat ${marker}`)).stdout).toBe('h1\n');
    for (const other of [2, 3]) {
      expect((await sb.exec(other, `test -e ${marker}`)).code).toBe(1);
      expect((await ssh(sb, other, `test -e ${marker}`)).code).toBe(1);
    }
    // The backing dir holds it; the mount point in the root namespace stays empty.
    expect(await readFile(join(sb.hosts[0].appDirBacking, marker.slice(sb.appDir.length)), 'utf8')).toBe('h1\n');
    expect(existsSync(marker)).toBe(false);
    // Every host resolves the same path to its own release files.
    for (const host of sb.hosts) {
      const seen = await sb.exec(host.index, `readlink ${sb.appDir}/current; cat ${sb.appDir}/run/gunicorn.pid`);
      expect(seen.stdout).toMatch(/^releases\/v1\n\d+\n$/);
    }
  });

  it('serves v1 from every host through HAProxy', async () => {
    expect(await sb.lbStatus()).toEqual({ h1: 'UP', h2: 'UP', h3: 'UP' });
    for (const host of sb.hosts) expect(await sb.probe(host.index)).toEqual({ status: 200, version: 'v1' });
    const servedBy = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const response = await fetch(sb.lbUrl);
      expect(response.status).toBe(200);
      expect(response.headers.get('x-app-version')).toBe('v1');
      expect(await response.text()).toContain('v1');
      servedBy.add(response.headers.get('x-backend-server') ?? '?');
    }
    expect([...servedBy].sort()).toEqual(['h1', 'h2', 'h3']);
  });

  it('measures a 5-second steady load without failures', async () => {
    const load = startLoad({ url: sb.lbUrl, rate: 100, connections: 10 });
    await sleep(5000);
    const report = await load.stop();
    console.log('load report', JSON.stringify(report));
    expect(report.requests).toBeGreaterThan(300);
    expect(report.failed).toBe(0);
    expect(report.versions).toEqual({ v1: report.requests });
    expect(Object.keys(report.servers).sort()).toEqual(['h1', 'h2', 'h3']);
    expect(report.latency.max).toBeGreaterThan(0);
    expect(() => startLoad({ url: 'http://10.0.0.1:80/' })).toThrow(/loopback/);
  });

  it('stop() removes every netns, link, process and directory of the run', async () => {
    const pids: number[] = [];
    for (const host of sb.hosts) {
      const out = (await run('ip', ['netns', 'pids', `gd${sb.id}${host.name}`])).stdout;
      pids.push(...out.split(/\s+/).filter(Boolean).map(Number));
    }
    for (const file of ['haproxy.pid', 'watchdog.pid']) pids.push(Number(await readFile(join(sb.root, file), 'utf8')));
    expect(pids.length).toBeGreaterThan(3 * 5); // unshare, init, sshd, gunicorn master + 2 workers per host
    expect(await remnants(sb, [])).not.toEqual([]); // sanity: the probe sees a live run

    const t0 = Date.now();
    await sb.stop();
    console.log(`sandbox ${sb.id} stopped in ${Date.now() - t0} ms`);
    await sb.stop(); // second call: no-op, no throw
    expect(await remnants(sb, pids)).toEqual([]);
    await expect(fetch(sb.lbUrl)).rejects.toThrow();
  });
});

describe('sandbox: gunicorn start modes and failures (1 host)', () => {
  let sb: Sandbox;

  beforeAll(async () => {
    requireRoot();
    sb = await startSandbox({ hosts: 1 });
  });

  afterAll(async () => {
    await sb?.stop();
  });

  it('fails fast with the error log when the release cannot be imported', async () => {
    await sb.seedRelease(1, 'broken', { version: 'broken', importError: true });
    const t0 = Date.now();
    const error = await sb.startGunicorn(1).then(() => undefined, (e: Error) => e);
    expect(error?.message).toMatch(/exited before it was ready/);
    expect(error?.message).toContain('import error requested by the test');
    expect(error?.message).toContain(sb.logs(1).gunicorn);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect((await sb.exec(1, `pgrep -f ${GUNICORN_PGREP}`)).code).toBe(1);
  });

  it('runs gunicorn in the foreground under a supervisor that stays its parent', async () => {
    await sb.seedRelease(1, 'r2', { version: 'v2', workers: 1 });
    await sb.startGunicorn(1, { daemon: false });
    expect(await sb.probe(1)).toEqual({ status: 200, version: 'v2' });
    const tree = await sb.exec(1, `pid=$(cat ${sb.appDir}/run/gunicorn.pid); ps -o args= -p "$(ps -o ppid= -p "$pid" | tr -d ' ')"; tr '\\0' ' ' < /proc/$pid/cmdline; echo; readlink /proc/$pid/cwd; cat ${sb.appDir}/current/REVISION`);
    const [parent, , cwd, revision] = tree.stdout.split('\n');
    expect(parent).toContain('gd-supervisor');
    expect(cwd).toBe(`${sb.appDir}/releases/r2`);
    expect(revision).toBe('r2');
    await expect(sb.startGunicorn(1)).rejects.toThrow(/already runs/);
  });

  it('serves through HAProxy once the host is ready', async () => {
    await sb.waitForLb();
    const response = await fetch(sb.lbUrl);
    expect(response.headers.get('x-app-version')).toBe('v2');
  });

  it('lets a USR2 re-exec find the new release through $PWD, and the old master vanish', async () => {
    const pidfile = `${sb.appDir}/run/gunicorn.pid`;
    const oldMaster = (await sb.exec(1, `cat ${pidfile}`)).stdout.trim();
    await sb.seedRelease(1, 'r3', { version: 'v3', workers: 1 });
    expect((await sb.exec(1, `kill -USR2 ${oldMaster}`)).code).toBe(0);
    const newMaster = await waitFor('the new master to write gunicorn.pid.2', async () => {
      const read = await sb.exec(1, `cat ${pidfile}.2`);
      return read.code === 0 && read.stdout.trim();
    }, { timeoutMs: 20_000 });
    expect((await sb.exec(1, `kill -QUIT ${oldMaster}`)).code).toBe(0);
    // PID 1 of the host reaps the old master: it disappears instead of lingering as a zombie.
    await waitFor('the new master to be promoted and the old one to be gone', async () => {
      const state = await sb.exec(1, `cat ${pidfile}; kill -0 ${oldMaster} 2>/dev/null && echo old-alive`);
      return state.stdout.trim() === newMaster;
    }, { timeoutMs: 20_000 });
    await waitFor('v3 to be ready', async () => (await sb.probe(1)).version === 'v3', { timeoutMs: 20_000 });
    const cwd = await sb.exec(1, `readlink /proc/${newMaster}/cwd`);
    expect(cwd.stdout.trim()).toBe(`${sb.appDir}/releases/r3`);
    // As under any process manager that watched the old pid: the supervisor saw its child exit.
    expect(await readFile(sb.logs(1).supervisor, 'utf8')).toContain('supervisor: gunicorn exited with status 0');
  });
});

describe('sandbox: crash cleanup', () => {
  it('the watchdog removes the sandbox of a test process killed with SIGKILL', async () => {
    requireRoot();
    const cli = fileURLToPath(new URL('../support/sandbox-cli.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', cli, '--hosts', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const line = await waitFor('sandbox-cli.ts to print its sandbox', () => output.split('\n').find((l) => l.startsWith('{')), {
      timeoutMs: 60_000,
      explain: () => output,
    });
    const started = JSON.parse(line) as { id: string; root: string };
    expect(existsSync(started.root)).toBe(true);

    child.kill('SIGKILL'); // no exit handler runs: only the watchdog can clean up
    await waitFor(`sandbox ${started.id} to be torn down by its watchdog`, async () => {
      const netns = (await run('ip', ['netns', 'list'])).stdout;
      return !existsSync(started.root) && !netns.includes(`gd${started.id}`);
    }, { timeoutMs: 15_000, intervalMs: 250 });
  });
});
