/**
 * Gunicorn set-ups that break naive reloads, on 2 real hosts (Debian's gunicorn 20.1, HAProxy
 * in front), one deploy after another on the same sandbox:
 * - a master inside a systemd service cgroup: usr2 is refused before anything changes;
 * - a release that changes `workers`: every strategy ends with the new release's count;
 * - worker recycling (`max_requests`) under load: rolling is not fooled by respawned workers;
 * - a preload app whose boot outlasts the reload timeout: the new usr2 master is stopped, not orphaned;
 * - a request longer than the old fixed 35 s stop wait, within `graceful_timeout`: it completes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/proc.js';
import type { ActionResult } from '../support/run-action.js';
import { startServingSandbox, type AppOptions, type Sandbox } from '../support/sandbox.js';
import { deployTo, expectAllOn, logOf, releaseSource, removeSource, underLoad } from './support/deploy-fixture.js';
import { masterFacts, versionsByWorker, type MasterFacts } from './support/gunicorn-facts.js';

/** Where cgroup v2 is mounted on this machine (/sys/fs/cgroup, or /sys/fs/cgroup/unified in hybrid mode). */
function cgroup2Mount(): string {
  const line = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .find((entry) => entry.split(' ')[2] === 'cgroup2');
  const mount = line?.split(' ')[1];
  if (!mount) throw new Error('no cgroup2 file system is mounted: the systemd case needs one');
  return mount;
}

/** A cgroup shaped like a systemd service's (<slice>/<unit>.service); remove() moves its processes out first. */
async function serviceCgroup(id: string): Promise<{ dir: string; path: string; remove(): Promise<void> }> {
  const mount = cgroup2Mount();
  const slice = join(mount, `gd-${id}.slice`);
  const dir = join(slice, `app-${id}.service`);
  await mkdir(dir, { recursive: true });
  return {
    dir,
    path: `/gd-${id}.slice/app-${id}.service`,
    async remove() {
      if (existsSync(dir)) {
        const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean);
        for (const pid of pids) await writeFile(join(mount, 'cgroup.procs'), pid).catch(() => undefined);
        await rmdir(dir);
      }
      if (existsSync(slice)) await rmdir(slice);
    },
  };
}

/** Every gunicorn process of a host (its own pid namespace): `pid ppid title`. */
async function gunicornProcesses(sb: Sandbox, host: number): Promise<string[]> {
  const result = await sb.exec(host, `ps -eo pid=,ppid=,args= | grep '[g]unicorn'`);
  return result.stdout.trim().split('\n').filter(Boolean);
}

describe('gunicorn edge cases on 2 hosts', () => {
  let sb: Sandbox;
  const sources: string[] = [];
  const source = async (version: string, app: Partial<AppOptions> = {}) => {
    const dir = await releaseSource({ version, ...app });
    sources.push(dir);
    return dir;
  };
  /** Deploys `release`; keeps the action's log in $GD_E2E_LOG_DIR when set (to read after a green run too). */
  const deploy = async (release: string, strategy: string, app: Partial<AppOptions>, inputs: Record<string, string> = {}) => {
    const result = await deployTo(sb, { source: await source(release, app), release, strategy, ...inputs });
    const logs = process.env.GD_E2E_LOG_DIR;
    if (logs) await writeFile(join(logs, `edges-${release}-${strategy}.log`), logOf(result));
    return result;
  };

  /** Deployed everywhere, each master with `workers` workers, all serving `release`. */
  async function expectDeployed(result: ActionResult, release: string, workers: number, recycling = false): Promise<MasterFacts[]> {
    expect(result.outputs.status, logOf(result)).toBe('deployed');
    await expectAllOn(sb, release);
    const masters: MasterFacts[] = [];
    for (const host of sb.hosts) {
      // Under max_requests, a worker recycled at this moment leaves the master one short until its
      // arbiter loop forks the replacement (within about a second): there the count may settle first.
      const settled = recycling
        ? await waitFor(`${host.name}: ${workers} workers`, async () => {
            const facts = await masterFacts(sb, host.index);
            return facts.children.length === workers ? facts : undefined;
          }, { timeoutMs: 5_000, intervalMs: 200 }).catch(() => undefined)
        : undefined;
      const master = settled ?? (await masterFacts(sb, host.index));
      expect(master.children, `${host.name} workers`).toHaveLength(workers);
      const served = await versionsByWorker(sb, host.index, master.children);
      // Every worker that answered serves the release; a listed worker that never answered must
      // be one max_requests recycled while it was sampled (its replacement answered instead).
      expect(Object.keys(served).length, `${host.name}: workers answered`).toBeGreaterThan(0);
      for (const [pid, versions] of Object.entries(served)) expect(versions, `${host.name} worker ${pid}`).toEqual([release]);
      const after = await masterFacts(sb, host.index);
      expect(after.pid, `${host.name} master`).toBe(master.pid);
      for (const pid of master.children.filter((child) => after.children.includes(child))) expect(served[pid], `${host.name} worker ${pid}`).toEqual([release]);
      masters.push(master);
    }
    return masters;
  }

  beforeAll(async () => {
    sb = await startServingSandbox({ hosts: 2, version: 'v1', app: { workers: 2 } });
  });
  afterAll(async () => {
    await sb?.stop();
    await Promise.all(sources.map(removeSource));
  });

  it('usr2 is refused before any change when the master runs in a systemd service cgroup', async () => {
    const cgroup = await serviceCgroup(sb.id);
    try {
      const before = await masterFacts(sb, 1);
      await sb.exec(1, `echo ${before.pid} > ${cgroup.dir}/cgroup.procs`);
      expect((await sb.exec(1, `cat /proc/${before.pid}/cgroup`)).stdout).toContain(cgroup.path);
      const result = await deploy('sd', 'usr2', { workers: 2 });
      expect(result.outputs.status, logOf(result)).toBe('failed');
      expect(result.stdout).toMatch(new RegExp(`systemd service app-${sb.id}\\.service[\\s\\S]*Use strategy: rolling`));
      expect(result.stdout).not.toMatch(/USR2 →/);
      await expectAllOn(sb, 'v1');
      expect(await masterFacts(sb, 1)).toEqual(before);
    } finally {
      await cgroup.remove();
    }
  });

  it('usr2 follows the new release when it changes workers (2 → 3 → 2)', async () => {
    await expectDeployed(await deploy('u3', 'usr2', { workers: 3 }), 'u3', 3);
    await expectDeployed(await deploy('u2', 'usr2', { workers: 2 }), 'u2', 2);
  });

  it('hup follows the new release when it changes workers (2 → 3 → 2)', async () => {
    await expectDeployed(await deploy('h3', 'hup', { workers: 3 }), 'h3', 3);
    await expectDeployed(await deploy('h2', 'hup', { workers: 2 }), 'h2', 2);
  });

  it('rolling follows the new release when it changes workers (N → N + 1)', async () => {
    const workers = (await masterFacts(sb, 1)).children.length + 1;
    await expectDeployed(await deploy('r3', 'rolling', { workers }), 'r3', workers);
  });

  it('rolling is not fooled by workers that max_requests respawns during the roll (under load)', async () => {
    // HUP makes the master read max_requests: from here on each worker recycles after 20-30 requests.
    const workers = (await masterFacts(sb, 1)).children.length;
    const recycling = { workers, maxRequests: 20, maxRequestsJitter: 10 };
    await expectDeployed(await deploy('mr1', 'hup', recycling), 'mr1', workers, true);
    const { result, load } = await underLoad(sb, () => deploy('mr2', 'rolling', recycling));
    await expectDeployed(result, 'mr2', workers, true);
    expect(load.versions.mr2, 'the new release served under load').toBeGreaterThan(0);
  });

  it('usr2 waits out a request in flight longer than 35 s when graceful_timeout allows it', async () => {
    // The serving workers must not kill a 60 s request themselves (worker timeout): HUP in a release that allows it.
    const workers = (await masterFacts(sb, 1)).children.length;
    const patient = { workers, gracefulTimeout: 75, timeoutSeconds: 90 };
    await expectDeployed(await deploy('gt1', 'hup', patient), 'gt1', workers);
    // WINCH comes some 10 s into the deploy: the request then still runs well over the old fixed 35 s.
    const slow = sb.exec(1, `curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:8000/sleep?ms=60000'`, { timeoutMs: 120_000 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const result = await deploy('gt2', 'usr2', patient);
    expect((await slow).stdout, 'the slow request').toBe('200');
    await expectDeployed(result, 'gt2', workers);
    expect(result.stdout).not.toMatch(/QUIT →/);
  });

  it('a preload boot slower than the reload timeout leaves no usr2 master behind', async () => {
    const before = await Promise.all(sb.hosts.map((host) => masterFacts(sb, host.index)));
    const result = await deploy('pre', 'usr2', { workers: 3, preload: true, bootSeconds: 6, bootOnlyUnderGunicorn: true }, { 'reload-timeout': '3' });
    expect(result.outputs.status, logOf(result)).toBe('rolled-back');
    // Long enough for a forgotten new master to finish loading the app and fork its workers.
    await new Promise((resolve) => setTimeout(resolve, 8000));
    for (const host of sb.hosts) {
      const now = await masterFacts(sb, host.index);
      expect(now, host.name).toMatchObject({ pid: before[host.index - 1]?.pid, alive: true, upgradePid: null });
      expect(await gunicornProcesses(sb, host.index), `${host.name}: only the master and its workers`).toHaveLength(1 + now.children.length);
    }
    await expectAllOn(sb, 'gt2');
  });
});
