/**
 * Proves the end-to-end sandbox itself (test/support/sandbox.ts): hosts, SSH with pinned host
 * keys, per-host app dirs, HAProxy, the load generator and a teardown that leaves nothing.
 * Needs root; run test/sandbox/install-packages.sh first on a fresh machine.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoad } from '../support/load.js';
import { processRunning, run, sleep, waitFor } from '../support/proc.js';
import { DEFAULT_SUDOERS, DEPLOY_USER, ensureDeployUser, GUNICORN_PGREP, gunicornAvailable, startSandbox, startServingSandbox, type Sandbox } from '../support/sandbox.js';

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

/** The system ssh client as another user of the host (the deploy user). */
function sshAs(sb: Sandbox, host: number, user: string, command: string) {
  return run('ssh', [...sb.sshArgs(host, { user }), command], { timeoutMs: 20_000 });
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

describe('sandbox: systemd hosts with a deploy user (2 hosts)', () => {
  let sb: Sandbox;
  let startMs = 0;
  /** A file in the machine's /tmp: systemd-tmpfiles-setup in a host would remove it. */
  const tmpMarker = `/tmp/gd-systemd-marker-${randomBytes(4).toString('hex')}`;
  /** The machine's account files, which systemd-sysusers in a host would edit. */
  const accountFiles = ['/etc/passwd', '/etc/group', '/etc/shadow'];
  let accountsBefore: string[] = [];
  let sudoersBefore: string[] = [];
  const hash = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

  beforeAll(async () => {
    requireRoot();
    // The deploy user is machine-wide and created once; everything after this must leave the accounts alone.
    await ensureDeployUser();
    accountsBefore = await Promise.all(accountFiles.map(hash));
    sudoersBefore = readdirSync('/etc/sudoers.d');
    await writeFile(tmpMarker, 'the machine\'s /tmp\n');
    const t0 = Date.now();
    sb = await startSandbox({ hosts: 2, systemd: true, sudoUser: true });
    startMs = Date.now() - t0;
    console.log(`systemd sandbox ${sb.id} (${sb.subnet}) booted in ${startMs} ms`);
  });

  afterAll(async () => {
    await sb?.stop();
    await rm(tmpMarker, { force: true });
  });

  it('boots systemd as PID 1 of each host, state running, in its own cgroup, with its own hostname', async () => {
    expect(sb.systemd).toBe(true);
    expect(sb.appDir).toBe(`/srv/gd-${sb.id}/app`);
    for (const host of sb.hosts) {
      const seen = await sb.exec(host.index, 'ps -o args= -p 1; systemctl is-system-running; hostname; grep ^0:: /proc/1/cgroup; systemctl is-active ssh.service systemd-journald.service; systemctl is-enabled systemd-tmpfiles-setup.service systemd-sysusers.service || true');
      expect(seen.stdout.split('\n')).toEqual([
        '/lib/systemd/systemd --system --unit=gd-host.target --log-target=journal --log-level=info',
        'running',
        host.name,
        '0::/init.scope',
        'active',
        'active',
        'masked',
        'masked',
        '',
      ]);
      // From the root namespace: the host's PID 1 is systemd, in the host's cgroup dir.
      expect((await readFile(`/proc/${host.initPid}/cmdline`, 'utf8')).split('\0')[0]).toBe('/lib/systemd/systemd');
      expect(await readFile(`/proc/${host.initPid}/cgroup`, 'utf8')).toMatch(new RegExp(`^0::/gd-${sb.id}-${host.name}/init\\.scope$`, 'm'));
      // systemd logs to the host's journal (and never to the machine's console).
      expect((await sb.exec(host.index, 'journalctl -b --no-pager _PID=1')).stdout).toContain('Reached target gd-host.target');
      console.log(`${host.name}: ${(await sb.exec(host.index, 'systemd-analyze time 2>&1 | head -1')).stdout.trim()}`);
    }
    expect(startMs).toBeLessThan(30_000);
  });

  it('accepts ssh as root and as the deploy user, whose home is private to each host', async () => {
    for (const host of sb.hosts) {
      const root = await ssh(sb, host.index, 'id -un; echo "$HOME"; hostname; systemctl is-system-running');
      expect(root).toEqual({ stdout: `root\n/root\n${host.name}\nrunning\n`, stderr: '', code: 0 });
      const deploy = await sshAs(sb, host.index, DEPLOY_USER, `id -un; echo "$HOME"; pwd; touch ~/marker-${host.name}; ls ~`);
      expect(deploy.stderr).toBe('');
      expect(deploy.stdout).toBe(`${DEPLOY_USER}\n/home/${DEPLOY_USER}\n/home/${DEPLOY_USER}\nmarker-${host.name}\n`);
    }
    expect(sb.deployUser).toBe(DEPLOY_USER);
    expect(readdirSync(`/home/${DEPLOY_USER}`)).toEqual([]); // the machine's mount point stays empty
  });

  it('gives the deploy user exactly the default sudo rules, in each host only', async () => {
    // www-data through sudo, nothing as root; systemctl show needs no sudo (D-Bus runs in each host, as on a server).
    const sudo = await sshAs(sb, 1, DEPLOY_USER, 'sudo -n -u www-data id -un; systemctl show ssh.service --property=ActiveState; sudo -n systemctl stop ssh.service; echo "stop: $?"; sudo -n id -un; echo "root: $?"');
    expect(sudo.stdout).toBe('www-data\nActiveState=active\nstop: 1\nroot: 1\n');
    expect(sudo.stderr).toBe('sudo: a password is required\nsudo: a password is required\n');
    expect((await sb.exec(1, `cat /etc/sudoers.d/${DEPLOY_USER}`)).stdout).toBe(DEFAULT_SUDOERS);
    expect(readdirSync('/etc/sudoers.d')).toEqual(sudoersBefore);

    // Per host: a rule taken away on h2 leaves h1 alone; visudo guards against a broken file.
    await sb.setSudoers(2, '# no rules\n');
    expect((await sshAs(sb, 2, DEPLOY_USER, 'sudo -n -u www-data id -un')).stderr).toBe('sudo: a password is required\n');
    expect((await sshAs(sb, 1, DEPLOY_USER, 'sudo -n -u www-data id -un')).stdout).toBe('www-data\n');
    await expect(sb.setSudoers(2, `${DEPLOY_USER} ALL=(www-data NOPASSWD ALL\n`)).rejects.toThrow(/visudo rejects/);
    await sb.setSudoers(2, DEFAULT_SUDOERS);
  });

  it('runs gunicorn.service Type=notify as www-data, socket-activated on /run/gunicorn.sock', async () => {
    await sb.seedRelease(1, 'v1', { version: 'v1', readyHook: true });
    expect((await sb.exec(1, `stat -c %U ${sb.appDir} ${sb.appDir}/releases/v1 ${sb.appDir}/current`)).stdout).toBe(`${DEPLOY_USER}\n`.repeat(3));
    expect((await sb.serviceState(1, 'gunicorn.socket')).activeState).toBe('inactive');
    const mainPid = await sb.startGunicornService(1, { socket: true });
    expect(await sb.serviceState(1, 'gunicorn.service')).toEqual({ mainPid, activeState: 'active', subState: 'running' });
    expect(await sb.serviceState(1, 'gunicorn.socket')).toMatchObject({ activeState: 'active', subState: 'running' });
    expect(await sb.probe(1, { unixSocket: '/run/gunicorn.sock' })).toEqual({ status: 200, version: 'v1' });
    expect((await sb.probe(1)).status).toBe(0); // nothing on TCP: the socket unit binds only the unix socket

    const facts = await sb.exec(1, [
      `echo $(ps -o user=,ppid=,args= -p ${mainPid})`,
      'stat -c "%U %F" /run/gunicorn.sock',
      `readlink /proc/${mainPid}/cwd`,
      `pgrep -c -P ${mainPid}`,
      `ls ${sb.appDir}/run/ready | wc -l`,
      `stat -c %U ${sb.appDir}/run/gunicorn.pid ${sb.appDir}/shared/log/gunicorn-error.log`,
      // PrivateTmp=true: the service has a /tmp of its own.
      `test -e /proc/${mainPid}/root${sb.root} && echo sees-run-dir || echo private-tmp`,
    ].join('; '));
    expect(facts.stderr).toBe('');
    expect(facts.stdout.split('\n')).toEqual([
      'www-data 1 gunicorn: master [app:application]',
      'www-data socket',
      `${sb.appDir}/releases/v1`,
      '2',
      '2',
      'www-data',
      'www-data',
      'private-tmp',
      '',
    ]);
    const unit = await readFile(`${sb.hosts[0].unitsDir}/gunicorn.service`, 'utf8');
    for (const line of ['Type=notify', 'User=www-data', 'RuntimeDirectory=gunicorn', 'ExecReload=/bin/kill -s HUP $MAINPID', 'KillMode=mixed', 'PrivateTmp=true', `WorkingDirectory=${sb.appDir}/current`]) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(unit).toContain(`--chdir ${sb.appDir}/current -c ${sb.appDir}/current/gunicorn.conf.py`);
    // The deploy user reads the MainPID (systemctl through D-Bus, no sudo) and may signal its gunicorn as www-data.
    const deploy = await sshAs(sb, 1, DEPLOY_USER, `systemctl show gunicorn.service --property=MainPID --value; sudo -n -u www-data kill -0 ${mainPid} && echo may-signal`);
    expect(deploy).toEqual({ stdout: `${mainPid}\nmay-signal\n`, stderr: '', code: 0 });
  });

  it('keeps serving through `systemctl reload gunicorn` (HUP: same master, new workers)', async () => {
    const { mainPid } = await sb.serviceState(1, 'gunicorn.service');
    const workersOf = async () => (await sb.exec(1, `pgrep -P ${mainPid} | sort`)).stdout.trim();
    const before = await workersOf();
    let probing = true;
    const statuses: number[] = [];
    const prober = (async () => {
      while (probing) statuses.push((await sb.probe(1, { unixSocket: '/run/gunicorn.sock' })).status);
    })();
    try {
      const reload = await sb.systemctl(1, 'reload', 'gunicorn');
      expect(reload).toMatchObject({ code: 0, stderr: '' });
      await waitFor('new workers after the reload', async () => {
        const now = await workersOf();
        return now.split('\n').length === 2 && now.split('\n').every((pid) => !before.split('\n').includes(pid));
      }, { timeoutMs: 30_000 });
      const settled = statuses.length;
      await waitFor('two more probes after the new workers', () => statuses.length >= settled + 2, { timeoutMs: 20_000 });
    } finally {
      probing = false;
      await prober;
    }
    expect(statuses.length).toBeGreaterThan(2);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    expect(await sb.serviceState(1, 'gunicorn.service')).toEqual({ mainPid, activeState: 'active', subState: 'running' });
  });

  it('runs Type=simple on TCP, reached through HAProxy', async () => {
    await sb.seedRelease(2, 'v2', { version: 'v2' });
    const mainPid = await sb.startGunicornService(2, { type: 'simple' });
    expect(await sb.serviceState(2, 'gunicorn.service')).toEqual({ mainPid, activeState: 'active', subState: 'running' });
    expect(await sb.probe(2)).toEqual({ status: 200, version: 'v2' });
    const args = await sb.exec(2, `ps -o ppid=,args= -p ${mainPid}; systemctl show gunicorn.service --property=Type --value; test -e /etc/systemd/system/gunicorn.socket || echo no-socket-unit`);
    expect(args.stdout).toBe('      1 gunicorn: master [app:application]\nsimple\nno-socket-unit\n');
    // h1 listens on a unix socket only: HAProxy sends everything to h2.
    await waitFor('HAProxy to see h2 UP', async () => (await sb.lbStatus()).h2 === 'UP', { timeoutMs: 20_000 });
    const response = await fetch(sb.lbUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-app-version')).toBe('v2');
    expect(response.headers.get('x-backend-server')).toBe('h2');
  });

  it.skipIf(!gunicornAvailable('23.0'))('runs Type=forking (--daemon, PIDFile) with an upstream gunicorn in a venv outside /tmp', async () => {
    expect((await sb.systemctl(2, 'stop', 'gunicorn.service')).code).toBe(0);
    expect((await sb.serviceState(2, 'gunicorn.service')).activeState).toBe('inactive');
    const mainPid = await sb.startGunicornService(2, { type: 'forking', gunicorn: '23.0' });
    expect(await sb.serviceState(2, 'gunicorn.service')).toEqual({ mainPid, activeState: 'active', subState: 'running' });
    expect(await sb.probe(2)).toEqual({ status: 200, version: 'v2' });
    const facts = await sb.exec(2, `cat /run/gunicorn/gunicorn.pid; ps -o user=,ppid= -p ${mainPid}; tr '\\0' ' ' </proc/${mainPid}/cmdline; echo; ${sb.appDir}/../venv-gunicorn-23.0/bin/python3 -c 'import gunicorn; print(gunicorn.__version__)'`);
    const [pidfile, owner, cmdline, version] = facts.stdout.split('\n');
    expect(pidfile).toBe(String(mainPid));
    expect(owner?.trim().split(/\s+/)).toEqual(['www-data', '1']);
    expect(cmdline?.trimEnd()).toBe('gunicorn: master [app:application]'); // setproctitle: the venv's gunicorn
    expect(version).toMatch(/^23\.0\./);
    expect(await readFile(`${sb.hosts[1].unitsDir}/gunicorn.service`, 'utf8')).toContain(`PIDFile=/run/gunicorn/gunicorn.pid`);
    await expect(sb.startGunicornService(2)).rejects.toThrow(/gunicorn.service is active on h2; stop it first/);
  });

  it('stop() leaves no process, netns, cgroup, /srv dir behind, and the machine\'s /tmp and accounts untouched', async () => {
    const pids: number[] = [];
    for (const host of sb.hosts) {
      const out = (await run('ip', ['netns', 'pids', `gd${sb.id}${host.name}`])).stdout;
      pids.push(...out.split(/\s+/).filter(Boolean).map(Number));
    }
    expect(pids.length).toBeGreaterThan(2 * 3); // unshare, systemd, journald, sshd per host (+ gunicorn)
    const cgroups = sb.hosts.map((host) => `/sys/fs/cgroup/unified/gd-${sb.id}-${host.name}`).filter(existsSync);
    expect(cgroups).toHaveLength(2);
    expect(existsSync(`/srv/gd-${sb.id}`)).toBe(true);

    const t0 = Date.now();
    await sb.stop();
    console.log(`systemd sandbox ${sb.id} stopped in ${Date.now() - t0} ms`);
    expect(await remnants(sb, pids)).toEqual([]);
    expect(cgroups.filter(existsSync)).toEqual([]);
    expect(existsSync(`/srv/gd-${sb.id}`)).toBe(false);
    expect(await readFile(tmpMarker, 'utf8')).toBe('the machine\'s /tmp\n');
    expect(await Promise.all(accountFiles.map(hash))).toEqual(accountsBefore);
    expect(readdirSync('/etc/sudoers.d')).toEqual(sudoersBefore);
  });
});

describe('sandbox: crash cleanup', () => {
  it.each([
    ['plain hosts', []],
    ['systemd hosts', ['--systemd']],
  ])('the watchdog removes the sandbox (%s) of a test process killed with SIGKILL', async (_kind, flags) => {
    requireRoot();
    const cli = fileURLToPath(new URL('../support/sandbox-cli.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', cli, '--hosts', '1', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const line = await waitFor('sandbox-cli.ts to print its sandbox', () => output.split('\n').find((l) => l.startsWith('{')), {
      timeoutMs: 60_000,
      explain: () => output,
    });
    const started = JSON.parse(line) as { id: string; root: string; appDir: string; hosts: { initPid: number }[] };
    expect(existsSync(started.root)).toBe(true);
    const initPid = started.hosts[0]?.initPid ?? 0;
    expect(processRunning(initPid)).toBe(true);
    // What only a systemd sandbox has: the host's cgroup and /srv/gd-<id>.
    const systemdOnly = [`/sys/fs/cgroup/unified/gd-${started.id}-h1`, `/srv/gd-${started.id}`];
    expect(systemdOnly.map(existsSync)).toEqual(flags.length ? [true, true] : [false, false]);

    child.kill('SIGKILL'); // no exit handler runs: only the watchdog can clean up
    await waitFor(`sandbox ${started.id} to be torn down by its watchdog`, async () => {
      const netns = (await run('ip', ['netns', 'list'])).stdout;
      return !existsSync(started.root) && !netns.includes(`gd${started.id}`);
    }, { timeoutMs: 15_000, intervalMs: 250 });
    expect(processRunning(initPid)).toBe(false);
    expect(systemdOnly.filter(existsSync)).toEqual([]);
  });
});
