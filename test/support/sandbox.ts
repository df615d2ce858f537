/**
 * End-to-end sandbox: N "hosts" on this machine, each a network namespace with its own sshd,
 * its own view of the app directory and its own pid namespace, behind one HAProxy.
 *
 * Layout of one run (id = 6 random [a-z0-9], in every name so parallel runs never collide):
 *   /tmp/gd-<id>/                 run dir (Sandbox.root)
 *     owner                       "<pid> <start time>" of the test process that owns the run
 *     app/                        mount point: Sandbox.appDir, the app dir as every host sees it
 *     h<N>/app/                   backing dir of host N's app dir (SandboxHost.appDirBacking)
 *     h<N>/home/                  host N's private /root
 *     h<N>/{sshd_config,sshd.log,init.log,ssh_host_ed25519_key}
 *     id_ed25519, known_hosts, authorized_keys, haproxy.{cfg,log,sock,pid}, watchdog.{pid,log}
 *   netns gd<id>h<N> (eth0 = <prefix>.N/24), bridge gd<id>br (<prefix>.254/24) in the root ns.
 *   With `bastion: true`: jb/ (like h<N>, its own sshd), id_ed25519_jump (the key only the bastion
 *   takes), netns gd<id>jb at <prefix>.253, and each host's sshd reachable from there alone.
 *
 * With `systemd: true` each app host boots the machine's systemd as its PID 1 instead (see
 * SandboxOptions.systemd), and the app dir is /srv/gd-<id>/app (Sandbox.appDir):
 *   /srv/gd-<id>/app              mount point of every host's app dir; venvs of upstream gunicorn
 *   h<N>/units/                   the host's /etc/systemd/system (gd-host.target, ssh.service, masks, gunicorn.*)
 *   h<N>/{deploy-home,sudoers.d}  with sudoUser: the deploy user's home and /etc/sudoers.d of host N
 *   cgroup2 dir gd-<id>-h<N> (/sys/fs/cgroup/unified or /sys/fs/cgroup): the host's cgroup root.
 *
 * The bash side lives in test/sandbox/: create-net.sh, host-init.sh (PID 1 of a host),
 * reaper.py, systemd-host.sh + systemd-init.sh (a systemd host), teardown.sh (the one teardown,
 * used by stop(), exit handlers, the watchdog and cleanup.sh), watchdog.sh (tears down when the
 * owning process dies, even by SIGKILL).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, chown, copyFile, lchown, mkdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { TESTED_GUNICORN_VERSIONS } from '../../src/servers/gunicorn/gunicorn-versions.js';
import { writeRelease, type AppOptions } from './app-fixture.js';
import { run, runChecked, tailFile, waitFor, type RunResult } from './proc.js';
import { gunicornUnits, HOST_TARGET, hostTarget, maskedUnits, sshService, type GunicornUnitType } from './systemd-units.js';

export type { AppOptions } from './app-fixture.js';

/** Gunicorn versions a sandbox can run: Debian's 20.1, and the upstream releases in ../shared/vendor/ (see its README). */
export type GunicornVersion = (typeof TESTED_GUNICORN_VERSIONS)[number];

export interface SandboxOptions {
  hosts: number;
  /** Gunicorn workers per host, default 2 (AppOptions.workers wins). */
  workers?: number;
  /**
   * Which gunicorn startGunicorn runs, default '20.1': Debian's /usr/bin/gunicorn. Any other
   * is an upstream release in a virtualenv built once per sandbox (make-venv.sh, in the run
   * dir, which every host sees), started from its bin/gunicorn, setproctitle included.
   */
  gunicorn?: GunicornVersion;
  /**
   * Put HAProxy on its own host, as in production: namespace gd<id>lb at <prefix>.250 with its
   * own sshd (key in knownHosts like every host), a private /run holding HAProxy's admin socket
   * at /run/haproxy/admin.sock (level admin), and the frontend on <prefix>.250:80, reached from
   * the root namespace through the bridge. Default false: HAProxy in the root namespace.
   */
  lbHost?: boolean;
  /**
   * A jump host in its own namespace, with its own sshd and its own client key; each host's
   * sshd then answers only connections from the bastion (nftables in the host), so a client in
   * the root namespace reaches the hosts over SSH only through it. HAProxy still reaches the apps.
   */
  bastion?: boolean;
  /** HAProxy's `weight` for every server (default: none, HAProxy's 1); lb-canary-weight needs room to lower it. */
  serverWeight?: number;
  /**
   * Boot real systemd (the machine's, 252 on Debian 12) as PID 1 of every app host, in its own
   * mount, pid, uts and cgroup namespaces (test/sandbox/systemd-host.sh, systemd-init.sh); sshd
   * runs as its ssh.service with the same sshd_config, keys and known_hosts as a normal host.
   * The app dir is /srv/gd-<id>/app (outside /tmp: the tutorial unit's PrivateTmp=true hides
   * /tmp from the service). Start the app with startGunicornService; drive systemd with
   * systemctl() / serviceState(). The LB host and the bastion stay plain hosts.
   */
  systemd?: boolean;
  /**
   * Needs `systemd: true`. The hosts also accept SSH as the non-root user `gddeploy`
   * (Sandbox.deployUser; created on the machine once, with useradd, if missing; the sandbox's key
   * is authorized for it), whose home is private to each host, and each host has its own
   * /etc/sudoers.d with DEFAULT_SUDOERS (replace it per host with setSudoers). The app dir
   * belongs to gddeploy, as when a deploy user owns the releases and the app runs as www-data.
   */
  sudoUser?: boolean;
}

/** The deploy user of a sandbox started with `sudoUser: true`. */
export const DEPLOY_USER = 'gddeploy';
/**
 * The sudo rules each host of a `sudoUser` sandbox starts with (/etc/sudoers.d/gddeploy in the
 * host): the least a deploy user needs to deploy an app that runs as www-data under systemd.
 */
export const DEFAULT_SUDOERS = `# graceful-deploy sandbox (test/support/sandbox.ts): the deploy user's rules.
# Anything as the app's user: read its processes, signal its gunicorn (kill -HUP/-USR2/-TTIN as
# the owner), write its run/ and logs, run install and migrate commands.
${DEPLOY_USER} ALL=(www-data) NOPASSWD: ALL
`;

/** startGunicornService options. */
export interface GunicornServiceOptions {
  /** The unit's Type=, default 'notify' (gunicorn's docs). 'forking' adds --daemon --pid /run/gunicorn/gunicorn.pid and PIDFile=. */
  type?: GunicornUnitType;
  /** Socket activation through gunicorn.socket (ListenStream= the bind addresses, SocketUser=www-data). Default false. */
  socket?: boolean;
  /** User= and Group= (the user's login group). Default 'www-data'; run/ and shared/log/ of the app dir become its. */
  user?: string;
  /**
   * gunicorn bind addresses (`unix:/path`, `host:port`). Default: `unix:/run/gunicorn.sock` with
   * `socket`, else `0.0.0.0:8000` (what HAProxy, probe() and the load generator reach). With
   * `socket` they are the socket's ListenStream= lines; list `0.0.0.0:8000` too for HAProxy.
   */
  bind?: string[];
  /** Which gunicorn, default the sandbox's (SandboxOptions.gunicorn); another upstream version gets its venv on first use. */
  gunicorn?: GunicornVersion;
  /** How long to wait for /health/ready, default 60 s. */
  timeoutMs?: number;
}

/** What `systemctl show` says about a unit. */
export interface ServiceState {
  /** 0 when the unit has no main process. */
  mainPid: number;
  /** active, activating, deactivating, inactive, failed, reloading. */
  activeState: string;
  /** running, listening, start, stop-sigterm, dead, failed, ... */
  subState: string;
}

/** Where probe() asks for /health/ready: a URL on the host (default http://127.0.0.1:8000/health/ready), optionally through a unix socket. */
export interface ProbeTarget {
  url?: string;
  unixSocket?: string;
}

/** The load balancer's host of a sandbox started with lbHost: true. */
export interface SandboxLbHost {
  name: 'lb';
  ip: string;
  sshPort: number;
  /** HAProxy's admin socket as the LB host sees it (absent from the root namespace). */
  socket: string;
  /** The backend holding the app hosts; server names are the hosts' names (h1, h2, ...). */
  backend: string;
}

/** The jump host of a sandbox started with `bastion: true`. */
export interface SandboxBastion {
  ip: string;
  sshPort: number;
  user: string;
  /** The key the bastion accepts (and the hosts do not). */
  privateKey: string;
  privateKeyPath: string;
  /** Its known_hosts line (also part of Sandbox.knownHosts). */
  knownHostsLine: string;
  /** Its sshd's log (LogLevel VERBOSE: one `Accepted publickey` per connection). */
  sshdLog: string;
}

export interface SandboxHost {
  /** 1-based: host 1 is 'h1' at <prefix>.1. Every `host: number` parameter takes this index. */
  index: number;
  name: string;
  ip: string;
  sshPort: number;
  /** The host's app dir as seen from the root namespace. */
  appDirBacking: string;
  /** Root-namespace pid of the host's PID 1 (its processes are all below it): systemd in a systemd sandbox. */
  initPid: number;
  /** systemd sandboxes: the host's /etc/systemd/system as seen from the root namespace (run daemon-reload after writing). */
  unitsDir?: string;
}

export interface HostLogs {
  /** Gunicorn's errorlog (master + workers + captured output), in the app dir's shared/log. */
  gunicorn: string;
  /** stdout/stderr of a foreground gunicorn and its supervisor (startGunicorn daemon: false). */
  supervisor: string;
  sshd: string;
  /** Output of the host's PID 1 (mount errors...). */
  init: string;
  /** uWSGI's log (daemonize = <app-dir>/shared/log/uwsgi.log in the fixture's uwsgi.ini). */
  uwsgi: string;
}

export interface Sandbox {
  id: string;
  root: string;
  /** The app dir as every host sees it (the same path on all hosts). */
  appDir: string;
  hosts: SandboxHost[];
  user: string;
  privateKey: string;
  /** known_hosts lines, one per host (and the bastion's): `ip ssh-ed25519 AAAA...`. */
  knownHosts: string;
  /** Set when started with `bastion: true`. */
  bastion?: SandboxBastion;
  lbUrl: string;
  /** The gunicorn entry point startGunicorn runs on every host. */
  gunicornBin: string;
  /** The virtualenv of an upstream gunicorn (its bin/python3), undefined for Debian's. */
  venv?: string;
  /** Started with `systemd: true`: every app host runs systemd as PID 1. */
  systemd: boolean;
  /** Started with `sudoUser: true`: the non-root SSH user with sudo (DEPLOY_USER). */
  deployUser?: string;

  // ---- additions beyond the brief, for tests and debugging ----
  /** The hosts' /24, e.g. '10.231.17.0/24'. */
  subnet: string;
  /** The root namespace's address on the hosts' network (<prefix>.254), e.g. for a database. */
  rootIp: string;
  privateKeyPath: string;
  knownHostsPath: string;
  haproxyLog: string;
  /** HAProxy admin socket (unix socket in the run dir; nothing is exposed on the network). */
  haproxySocket: string;
  /** HAProxy's own host (lbHost: true), undefined when HAProxy runs in the root namespace. */
  lb?: SandboxLbHost;
  /** bash -c on the LB host (lbHost: true), like exec() on an app host. */
  execLb(command: string, opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string; code: number }>;
  logs(host: number): HostLogs;
  /** Arguments for the system ssh client reaching `host` with strict host key checking, as root or `opts.user`. */
  sshArgs(host: number, opts?: { user?: string }): string[];
  /** HAProxy's view of the backend servers: { h1: 'UP', h2: 'DOWN 1/2', ... }. */
  lbStatus(): Promise<Record<string, string>>;
  /** Each server's current weight in HAProxy (`show stat`'s weight column), by server name. */
  lbWeights(): Promise<Record<string, number>>;
  /** Resolves when HAProxy reports every server UP. */
  waitForLb(opts?: { timeoutMs?: number }): Promise<void>;

  /** bash -c inside the host (its network, mount and pid namespaces), as root in /root with a clean environment. */
  exec(host: number, command: string, opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string; code: number }>;
  /**
   * Puts a release on a host as a deploy leaves it: <appDir>/releases/<version> with app.py,
   * gunicorn.conf.py, REVISION; shared/log/, run/; `current` -> releases/<version> (relative).
   * `version` names the release; `app.version` is what the app reports (they may differ).
   */
  seedRelease(host: number, version: string, app: AppOptions): Promise<void>;
  /**
   * Starts gunicorn in the host: `cd <appDir>/current && <gunicornBin> -c gunicorn.conf.py
   * app:application` plus `--daemon` (default); with daemon: false under a supervisor shell
   * that stays its parent (setsid bash waiting for it). Resolves when /health/ready answers 200.
   */
  startGunicorn(host: number, opts?: { daemon?: boolean; timeoutMs?: number }): Promise<void>;
  /**
   * Starts uWSGI in the host with the release's uwsgi.ini, through the link:
   * `cd <appDir> && uwsgi --ini <appDir>/current/uwsgi.ini` (daemonized by the ini). Resolves
   * when /health/ready answers 200.
   */
  startUwsgi(host: number, opts?: { timeoutMs?: number }): Promise<void>;
  /**
   * systemd sandboxes: writes gunicorn.service (and gunicorn.socket with `socket`) into the host's
   * units dir as gunicorn's docs write them (see systemd-units.ts), gives run/ and shared/log/ of
   * the app dir to the service's user, runs daemon-reload and starts the socket (the first probe
   * activates the service) or the service, and resolves with the service's MainPID once
   * /health/ready answers 200 on the bound address. The release must be seeded first.
   */
  startGunicornService(host: number, opts?: GunicornServiceOptions): Promise<number>;
  /** systemd sandboxes: `systemctl <args>` in the host, as root (each argument one shell word). */
  systemctl(host: number, ...args: string[]): Promise<{ stdout: string; stderr: string; code: number }>;
  /** systemd sandboxes: MainPID, ActiveState and SubState of `unit` (`systemctl show`). */
  serviceState(host: number, unit: string): Promise<ServiceState>;
  /** sudoUser sandboxes: replaces the host's /etc/sudoers.d/gddeploy (checked with visudo first). */
  setSudoers(host: number, rules: string): Promise<void>;
  /** GET /health/ready on the host itself (default http://127.0.0.1:8000/health/ready); status 0 when nothing answers. */
  probe(host: number, target?: ProbeTarget): Promise<{ status: number; version: string | null }>;
  /**
   * Kills the bastion's SSH sessions, as a bastion reboot or an idle-timeout firewall would
   * drop them; its sshd keeps listening. Resolves with the number of processes killed.
   */
  dropBastionSessions(): Promise<number>;
  /** Kills everything of this sandbox and removes it; safe to call twice, never throws. */
  stop(): Promise<void>;
}

const SCRIPTS = fileURLToPath(new URL('../sandbox/', import.meta.url));
/**
 * Upstream gunicorn releases (MIT, unchanged `gunicorn/` packages) kept beside the repository in
 * shared/vendor/, as on every developer machine and in CI; nothing third-party is copied in here.
 */
export const GUNICORN_VENDOR = process.env.GD_GUNICORN_VENDOR ?? fileURLToPath(new URL('../../../shared/vendor/', import.meta.url));

/** Whether the upstream release of gunicorn `version` is there to build a virtualenv from (20.1 is Debian's). */
export function gunicornAvailable(version: GunicornVersion): boolean {
  return version === '20.1' || existsSync(join(GUNICORN_VENDOR, `gunicorn-${version}.0`, 'gunicorn'));
}
const DEBIAN_GUNICORN = '/usr/bin/gunicorn';
/**
 * pgrep -f pattern for a gunicorn process: its setproctitle title or a gunicorn program in its
 * command line (not any path that mentions gunicorn, such as a checkout named after it).
 */
export const GUNICORN_PGREP = `'^gunicorn: |/gunicorn( |$)'`;
const RUN_BASE = '/tmp';
/** systemd sandboxes keep what their services must see outside /tmp (PrivateTmp=true): /srv/gd-<id>. */
const SRV_BASE = '/srv';
/** What an ssh session on a Debian server gets; exec() uses the same. */
const HOST_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const HEALTH_URL = 'http://127.0.0.1:8000/health/ready';
/** The URL curl requests through a unix socket (the host part only fills the Host header). */
const UNIX_HEALTH_URL = 'http://localhost/health/ready';
const RELEASE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$/;

// ---------------------------------------------------------------------------------------------
// Cleanup after crashes: every live sandbox is torn down synchronously when the process exits or
// gets a termination signal; watchdog.sh covers the deaths no handler sees (SIGKILL, OOM).

const live = new Set<string>();
let exitHooksInstalled = false;

function teardownSync(id: string): void {
  spawnSync(join(SCRIPTS, 'teardown.sh'), [id], { stdio: 'ignore', timeout: 30_000 });
  live.delete(id);
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => [...live].forEach(teardownSync));
  if (!isMainThread) return; // signal events only reach the main thread
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      [...live].forEach(teardownSync);
      // Keep the signal's usual effect unless someone else (vitest) handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

// ---------------------------------------------------------------------------------------------

export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  checkPrerequisites(opts);
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 50) {
    throw new Error(`startSandbox: hosts must be an integer 1..50, got ${opts.hosts}`);
  }
  if (opts.sudoUser && !opts.systemd) throw new Error('startSandbox: sudoUser needs systemd: true (the app runs as www-data only under startGunicornService)');
  if (opts.sudoUser) await ensureDeployUser();
  const workers = opts.workers ?? 2;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`startSandbox: workers must be >= 1, got ${workers}`);

  installExitHooks();
  const id = await claimRunDir();
  live.add(id);
  const version = opts.gunicorn ?? '20.1';
  if (!TESTED_GUNICORN_VERSIONS.includes(version)) throw new Error(`startSandbox: gunicorn must be one of ${TESTED_GUNICORN_VERSIONS.join(', ')}, got ${version}`);
  const sandbox = new SandboxImpl(id, {
    hostCount: opts.hosts,
    workers,
    gunicornVersion: version,
    lbHost: opts.lbHost === true,
    bastion: opts.bastion === true,
    systemd: opts.systemd === true,
    sudoUser: opts.sudoUser === true,
    serverWeight: opts.serverWeight,
  });
  try {
    await sandbox.setUp();
  } catch (error) {
    await sandbox.stop();
    throw error;
  }
  return sandbox;
}

/**
 * startSandbox + release `version` (default 'v1') seeded and gunicorn serving on every host + HAProxy
 * seeing them all UP. In a systemd sandbox gunicorn runs as gunicorn.service (startGunicornService
 * with `service`; with `socket: true` and no `bind`, the socket listens on /run/gunicorn.sock and
 * on 0.0.0.0:8000 so HAProxy reaches it).
 */
export async function startServingSandbox(
  opts: SandboxOptions & { version?: string; app?: Partial<AppOptions>; server?: 'gunicorn' | 'uwsgi'; service?: GunicornServiceOptions },
): Promise<Sandbox> {
  const sandbox = await startSandbox(opts);
  try {
    const version = opts.version ?? opts.app?.version ?? 'v1';
    await Promise.all(
      sandbox.hosts.map(async (host) => {
        await sandbox.seedRelease(host.index, version, { ...opts.app, version: opts.app?.version ?? version });
        if (opts.server === 'uwsgi') await sandbox.startUwsgi(host.index);
        else if (sandbox.systemd) {
          const service = opts.service ?? {};
          const bind = service.bind ?? (service.socket ? ['unix:/run/gunicorn.sock', '0.0.0.0:8000'] : undefined);
          await sandbox.startGunicornService(host.index, { ...service, bind });
        } else await sandbox.startGunicorn(host.index);
      }),
    );
    await sandbox.waitForLb();
  } catch (error) {
    await sandbox.stop();
    throw error;
  }
  return sandbox;
}

function checkPrerequisites(opts: SandboxOptions): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'The e2e sandbox must run as root (it creates network namespaces, bind mounts and runs sshd). ' +
        `Current uid: ${process.getuid?.()}.`,
    );
  }
  const needed = ['ip', 'nsenter', 'unshare', 'flock', 'setsid', 'ssh-keygen', 'curl', '/usr/sbin/sshd', '/usr/sbin/haproxy', '/usr/bin/gunicorn', '/usr/bin/python3'];
  if (opts.systemd) needed.push('/lib/systemd/systemd', '/usr/bin/systemctl');
  if (opts.sudoUser) needed.push('/usr/bin/sudo', '/usr/sbin/visudo', 'useradd');
  const probe = spawnSync('/bin/bash', ['-c', 'for c in "$@"; do command -v "$c" >/dev/null || echo "$c"; done', 'check', ...needed], { encoding: 'utf8' });
  const missing = probe.stdout.trim();
  if (missing) {
    throw new Error(`The e2e sandbox needs: ${missing.split('\n').join(', ')}. Install them with: sudo test/sandbox/install-packages.sh`);
  }
}

/** Picks an unused id and creates its run dir atomically (mkdir fails if another run has it). */
async function claimRunDir(): Promise<string> {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const owner = `${process.pid} ${processStartTime(process.pid)}\n`;
  for (let attempt = 0; attempt < 20; attempt++) {
    const id = [...randomBytes(6)].map((byte) => alphabet[byte % alphabet.length]).join('');
    try {
      await mkdir(join(RUN_BASE, `gd-${id}`), { mode: 0o755 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw error;
    }
    // Written at once: cleanup.sh keeps run dirs whose owner is alive.
    await writeFile(join(RUN_BASE, `gd-${id}`, 'owner'), owner);
    return id;
  }
  throw new Error('could not find an unused sandbox id in 20 attempts');
}

/** The deploy user's passwd entry. */
interface DeployUser {
  uid: number;
  gid: number;
  home: string;
}

/**
 * Creates the deploy user of sudoUser sandboxes on the machine if it is missing (users are
 * machine-wide; the hosts share /etc/passwd): login group of its own, /bin/bash, password field
 * '*' (no password login; sshd without PAM refuses an account locked with '!'), home
 * /home/gddeploy left as an empty mount point on which each host mounts its own home.
 * Idempotent, and serialised with other sandboxes starting at the same time.
 */
export async function ensureDeployUser(): Promise<DeployUser> {
  const lock = existsSync('/run/lock') ? '/run/lock/graceful-deploy-user.lock' : '/tmp/graceful-deploy-user.lock';
  const script = `getent passwd "$1" >/dev/null || useradd --no-create-home --home-dir "/home/$1" --shell /bin/bash --user-group --password '*' --comment 'graceful-deploy sandbox deploy user' "$1"`;
  await runChecked('flock', ['-w', '30', lock, '/bin/bash', '-c', script, 'ensure-user', DEPLOY_USER], { what: `creating the user ${DEPLOY_USER}` });
  const entry = (await runChecked('getent', ['passwd', DEPLOY_USER])).stdout.trim().split(':');
  const [uid, gid, home] = [Number(entry[2]), Number(entry[3]), entry[5] ?? ''];
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || !home.startsWith('/')) throw new Error(`${DEPLOY_USER}: unexpected passwd entry '${entry.join(':')}'`);
  await mkdir(home, { recursive: true });
  return { uid, gid, home };
}

/** Field 22 of /proc/<pid>/stat: with the pid it identifies a process even if the pid is reused. */
function processStartTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19] ?? '';
}

interface HostState extends SandboxHost {
  dir: string;
}

interface SandboxConfig {
  hostCount: number;
  workers: number;
  gunicornVersion: GunicornVersion;
  lbHost: boolean;
  bastion: boolean;
  systemd: boolean;
  sudoUser: boolean;
  serverWeight?: number;
}

class SandboxImpl implements Sandbox {
  readonly root: string;
  readonly appDir: string;
  readonly user = 'root';
  readonly systemd: boolean;
  readonly deployUser: string | undefined;
  /** systemd sandboxes: /srv/gd-<id> (app dir mount point, venvs), outside /tmp for PrivateTmp=true units. */
  private readonly srvRoot: string | undefined;
  private deployUserEntry: DeployUser | undefined;
  /** Upstream gunicorn venvs by version, built once on first use. */
  private readonly venvs = new Map<GunicornVersion, Promise<string>>();
  hosts: HostState[] = [];
  privateKey = '';
  knownHosts = '';
  lbUrl = '';
  gunicornBin = DEBIAN_GUNICORN;
  venv: string | undefined;
  bastion: SandboxBastion | undefined;
  subnet = '';
  rootIp = '';
  readonly privateKeyPath: string;
  readonly knownHostsPath: string;
  readonly haproxyLog: string;
  readonly haproxySocket: string;
  lb: SandboxLbHost | undefined;
  private lbInitPid = 0;
  private stopping: Promise<void> | undefined;

  private readonly hostCount: number;
  private readonly workers: number;
  private readonly gunicornVersion: GunicornVersion;
  private readonly withLbHost: boolean;
  private readonly withBastion: boolean;
  private readonly serverWeight: number | undefined;

  constructor(
    readonly id: string,
    config: SandboxConfig,
  ) {
    this.hostCount = config.hostCount;
    this.workers = config.workers;
    this.gunicornVersion = config.gunicornVersion;
    this.withLbHost = config.lbHost;
    this.withBastion = config.bastion;
    this.systemd = config.systemd;
    this.serverWeight = config.serverWeight;
    this.deployUser = config.sudoUser ? DEPLOY_USER : undefined;
    this.root = join(RUN_BASE, `gd-${id}`);
    this.srvRoot = this.systemd ? join(SRV_BASE, `gd-${id}`) : undefined;
    this.appDir = join(this.srvRoot ?? this.root, 'app');
    this.privateKeyPath = join(this.root, 'id_ed25519');
    this.knownHostsPath = join(this.root, 'known_hosts');
    this.haproxyLog = join(this.root, 'haproxy.log');
    this.haproxySocket = join(this.root, 'haproxy.sock');
  }

  async setUp(): Promise<void> {
    this.startWatchdog();
    const netArgs = [this.id, String(this.hostCount), ...(this.withLbHost ? ['lb'] : []), ...(this.withBastion ? ['bastion'] : [])];
    const created = await runChecked(join(SCRIPTS, 'create-net.sh'), netArgs, { timeoutMs: 60_000, what: 'create-net.sh' });
    const prefix = created.stdout.trim();
    this.subnet = `${prefix}.0/24`;
    this.rootIp = `${prefix}.254`;

    await mkdir(this.appDir, { recursive: true });
    if (this.deployUser) this.deployUserEntry = await ensureDeployUser();
    await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `gd-${this.id}-client`, '-f', this.privateKeyPath]);
    this.privateKey = await readFile(this.privateKeyPath, 'utf8');
    await copyFile(`${this.privateKeyPath}.pub`, join(this.root, 'authorized_keys'));

    const hostKeys = await Promise.all([
      ...Array.from({ length: this.hostCount }, (_, i) => this.startHost(i + 1, `${prefix}.${i + 1}`)),
      ...(this.withLbHost ? [this.startLbHost(`${prefix}.250`)] : []),
    ]);
    if (this.withBastion) hostKeys.push(await this.startBastion(`${prefix}.253`));
    this.knownHosts = hostKeys.join('');
    await writeFile(this.knownHostsPath, this.knownHosts);
    if (this.withLbHost) await this.startLbHaproxy();
    else await this.startHaproxy();
    if (this.gunicornVersion !== '20.1') {
      this.gunicornBin = await this.gunicornOf(this.gunicornVersion);
      this.venv = dirname(dirname(this.gunicornBin));
    }
  }

  /** The gunicorn entry point of `version`: Debian's for 20.1, else a venv's (built on first use). */
  private gunicornOf(version: GunicornVersion): Promise<string> {
    if (version === '20.1') return Promise.resolve(DEBIAN_GUNICORN);
    let made = this.venvs.get(version);
    if (!made) {
      made = this.makeVenv(version);
      this.venvs.set(version, made);
    }
    return made;
  }

  /**
   * The virtualenv with upstream gunicorn `version` (from ../shared/vendor/), in the run dir (in
   * /srv/gd-<id> for systemd sandboxes, where a PrivateTmp=true unit sees it); returns its bin/gunicorn.
   */
  private async makeVenv(version: GunicornVersion): Promise<string> {
    const venv = join(this.srvRoot ?? this.root, `venv-gunicorn-${version}`);
    if (!gunicornAvailable(version)) {
      throw new Error(`gunicorn ${version}: no upstream release in ${join(GUNICORN_VENDOR, `gunicorn-${version}.0`)} (shared/vendor/ beside the repository holds them; GD_GUNICORN_VENDOR names another folder)`);
    }
    const made = await runChecked(join(SCRIPTS, 'make-venv.sh'), [venv, join(GUNICORN_VENDOR, `gunicorn-${version}.0`)], { timeoutMs: 60_000, what: 'make-venv.sh' });
    if (!made.stdout.trim().startsWith(`${version}.`)) throw new Error(`make-venv.sh: expected gunicorn ${version}, the venv imports ${made.stdout.trim()}`);
    return join(venv, 'bin', 'gunicorn');
  }

  private startWatchdog(): void {
    const log = openSync(join(this.root, 'watchdog.log'), 'a');
    const child = spawn('/bin/bash', [join(SCRIPTS, 'watchdog.sh'), this.id, String(process.pid), processStartTime(process.pid)], {
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    child.unref();
    void writeFile(join(this.root, 'watchdog.pid'), `${child.pid}\n`).catch(() => {});
  }

  /** Creates host N's files, starts its PID 1 (mounts + sshd), waits for sshd; returns its known_hosts line. */
  private async startHost(index: number, ip: string): Promise<string> {
    const name = `h${index}`;
    const booted = await this.startMachine(name, ip, join(this.root, 'authorized_keys'), [], this.systemd);
    this.hosts[index - 1] = {
      index, name, ip, sshPort: 22, appDirBacking: join(booted.dir, 'app'), dir: booted.dir, initPid: booted.initPid,
      ...(this.systemd ? { unitsDir: join(booted.dir, 'units') } : {}),
    };
    return booted.knownHostsLine;
  }

  /** The LB host: a host like the others (own sshd, mounts) plus a private /run for HAProxy's socket. */
  private async startLbHost(ip: string): Promise<string> {
    const booted = await this.startMachine('lb', ip, join(this.root, 'authorized_keys'), ['private-run']);
    this.lbInitPid = booted.initPid;
    this.lb = { name: 'lb', ip, sshPort: 22, socket: '/run/haproxy/admin.sock', backend: 'app' };
    return booted.knownHostsLine;
  }

  /** The jump host: a machine like the hosts that accepts its own client key only. */
  private async startBastion(ip: string): Promise<string> {
    const privateKeyPath = join(this.root, 'id_ed25519_jump');
    await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `gd-${this.id}-jump-client`, '-f', privateKeyPath]);
    await mkdir(join(this.root, 'jb'));
    const authorizedKeys = join(this.root, 'jb', 'authorized_keys');
    await copyFile(`${privateKeyPath}.pub`, authorizedKeys);
    const { knownHostsLine } = await this.startMachine('jb', ip, authorizedKeys);
    const sshdLog = join(this.root, 'jb', 'sshd.log');
    this.bastion = { ip, sshPort: 22, user: 'root', privateKey: await readFile(privateKeyPath, 'utf8'), privateKeyPath, knownHostsLine, sshdLog };
    return knownHostsLine;
  }

  /**
   * Starts the PID 1 of machine `name` in netns gd<id><name> and waits for its sshd: host-init.sh
   * (mounts + sshd), or with `systemd` systemd-host.sh (systemd, sshd as its ssh.service), which
   * must also reach state `running`.
   */
  private async startMachine(name: string, ip: string, authorizedKeys: string, initArgs: string[] = [], systemd = false): Promise<{ dir: string; initPid: number; knownHostsLine: string }> {
    const dir = join(this.root, name);
    const netns = `gd${this.id}${name}`;
    await mkdir(join(dir, 'app'), { recursive: true });
    await this.makeHome(join(dir, 'home'));
    const hostKey = join(dir, 'ssh_host_ed25519_key');
    await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `gd-${this.id}-${name}`, '-f', hostKey]);
    await writeFile(join(dir, 'sshd_config'), sshdConfig({ ip, dir, hostKey, authorizedKeys }));
    if (systemd) await this.prepareSystemdHost(dir);

    const initLog = join(dir, 'init.log');
    const log = openSync(initLog, 'a');
    const argv = systemd
      ? ['/bin/bash', join(SCRIPTS, 'systemd-host.sh'), this.id, name, dir, this.appDir,
        ...(this.deployUserEntry ? ['--deploy-home', this.deployUserEntry.home] : [])]
      : ['nsenter', `--net=/run/netns/${netns}`, '--', 'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--mount-proc', '--kill-child', '--',
        '/bin/bash', join(SCRIPTS, 'host-init.sh'), dir, this.appDir, join(SCRIPTS, 'reaper.py'), ...initArgs];
    const child = spawn(argv[0] ?? '', argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    let exited: string | undefined;
    child.on('exit', (code, signal) => (exited = `exited with ${signal ?? code}`));
    child.on('error', (error) => (exited = `could not start: ${error.message}`));

    const explain = async () => `${await tailFile(initLog, 20)}\n${await tailFile(join(dir, 'sshd.log'), 20)}`;
    // A host behind the bastion resets every other connection: ask its socket table instead.
    const listening = this.withBastion && name !== 'jb'
      ? async () => (await run('nsenter', [`--net=/run/netns/${netns}`, '--', 'ss', '-Hltn', `src ${ip}:22`], { timeoutMs: 5000 })).stdout.trim() !== ''
      : () => tcpOpen(ip, 22);
    await waitFor(
      `sshd of ${name} to listen on ${ip}:22`,
      async () => {
        if (exited) throw new Error(`host ${name} of sandbox ${this.id}: its init ${exited}\n${await explain()}`);
        return listening();
      },
      { timeoutMs: 20_000, intervalMs: 100, explain },
    );
    // nsenter exec'd unshare (systemd-host.sh exec'd nsenter), whose only child is the host's PID 1.
    const children = (await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')).trim().split(/\s+/);
    const initPid = Number(children[0]);
    if (!Number.isInteger(initPid) || initPid <= 0) throw new Error(`host ${name}: could not find its init process (children of ${child.pid}: '${children.join(' ')}')`);
    await writeFile(join(dir, 'init.pid'), `${initPid}\n`);
    if (systemd) {
      // `running`: every unit of the boot started; `degraded` names a failed one.
      const state = await this.nsExec(initPid, 'systemctl is-system-running --wait', 30_000, `systemd of ${name} to finish booting`, true);
      if (state.stdout !== 'running\n') {
        const journal = await this.nsExec(initPid, 'systemctl --failed --no-pager; journalctl -b --no-pager -n 40', 30_000, `the journal of ${name}`, true);
        throw new Error(`host ${name} of sandbox ${this.id}: systemd is '${state.stdout.trim()}' after boot\n${journal.stdout}\n${await explain()}`);
      }
    }
    const [type, key] = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/);
    return { dir, initPid, knownHostsLine: `${ip} ${type} ${key}
` };
  }

  /**
   * The files of a systemd host: units/ (its /etc/systemd/system: the boot target, ssh.service and
   * the masks), hostname and hosts (its /etc/hostname and
 * /etc/hosts, naming it), generators/ (an
 * empty dir over the system generators) and, with a deploy user, that user's home and the
   * host's /etc/sudoers.d; the deploy user owns the app dir.
   */
  private async prepareSystemdHost(dir: string): Promise<void> {
    const units = join(dir, 'units');
    await mkdir(units);
    await writeFile(join(units, HOST_TARGET), hostTarget());
    await writeFile(join(units, 'ssh.service'), sshService({ sshdConfig: join(dir, 'sshd_config'), sshdLog: join(dir, 'sshd.log') }));
    for (const unit of maskedUnits()) await symlink('/dev/null', join(units, unit));
    await writeFile(join(dir, 'hostname'), `${basename(dir)}\n`);
    const hosts = await readFile('/etc/hosts', 'utf8').catch(() => '127.0.0.1\tlocalhost\n');
    await writeFile(join(dir, 'hosts'), `${hosts.trimEnd()}\n127.0.1.1\t${basename(dir)}\n`);
    await mkdir(join(dir, 'generators'));
    const user = this.deployUserEntry;
    if (!user) return;
    await this.makeHome(join(dir, 'deploy-home'), user);
    await mkdir(join(dir, 'sudoers.d'), { mode: 0o755 });
    await writeFile(join(dir, 'sudoers.d', DEPLOY_USER), DEFAULT_SUDOERS, { mode: 0o440 });
    await chown(join(dir, 'app'), user.uid, user.gid);
  }

  /** A fresh server's home (root's, or `owner`'s): Debian's default dotfiles, nothing of this machine's /root. */
  private async makeHome(home: string, owner?: DeployUser): Promise<void> {
    await mkdir(home, { recursive: true, mode: 0o700 });
    await chmod(home, 0o700);
    for (const [name, candidates] of [
      ['.bashrc', ['/usr/share/base-files/dot.bashrc', '/etc/skel/.bashrc']],
      ['.profile', ['/usr/share/base-files/dot.profile', '/etc/skel/.profile']],
    ] as const) {
      // root's dotfiles come from base-files, a user's from /etc/skel (as useradd -m copies them).
      for (const source of owner ? [...candidates].reverse() : candidates) {
        try {
          await copyFile(source, join(home, name));
          if (owner) await chown(join(home, name), owner.uid, owner.gid);
          break;
        } catch {
          /* try the next one */
        }
      }
    }
    if (owner) await chown(home, owner.uid, owner.gid);
  }

  private async startHaproxy(): Promise<void> {
    const configPath = join(this.root, 'haproxy.cfg');
    // A port can be taken between choosing and binding it: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freeLoopbackPort();
      await writeFile(configPath, haproxyConfig({ bind: `127.0.0.1:${port}`, sockets: [this.haproxySocket], hosts: this.hosts, weight: this.serverWeight }));
      const check = await run('/usr/sbin/haproxy', ['-c', '-q', '-f', configPath]);
      if (check.code !== 0) throw new Error(`haproxy rejected ${configPath}:\n${check.stderr}${check.stdout}`);

      const exited = await this.spawnHaproxy([], configPath);
      try {
        await waitFor(
          `haproxy to listen on 127.0.0.1:${port}`,
          async () => {
            if (exited()) throw new Error('haproxy exited');
            return (await tcpOpen('127.0.0.1', port)) && (await this.lbStatus().then(() => true, () => false));
          },
          { timeoutMs: 10_000, intervalMs: 100 },
        );
        this.lbUrl = `http://127.0.0.1:${port}/`;
        return;
      } catch (error) {
        const logText = await tailFile(this.haproxyLog, 20);
        if (attempt >= 3 || !/cannot bind|Address already in use/i.test(logText)) {
          throw new Error(`haproxy did not start: ${(error as Error).message}\n${logText}`);
        }
        // Port stolen: the dead child frees nothing; try another port.
      }
    }
  }

  /**
   * HAProxy inside the LB host (its network, mounts and pids): the frontend on the LB's address,
   * the admin socket the action uses at /run/haproxy/admin.sock (private to that host), and a
   * second one in the run dir for lbStatus(). teardown.sh kills it with the LB's namespace.
   */
  private async startLbHaproxy(): Promise<void> {
    const lb = this.lb;
    if (!lb) throw new Error('startLbHaproxy: no LB host');
    const configPath = join(this.root, 'haproxy.cfg');
    await writeFile(configPath, haproxyConfig({ bind: `${lb.ip}:80`, sockets: [lb.socket, this.haproxySocket], hosts: this.hosts, weight: this.serverWeight }));
    const check = await this.execLb(`/usr/sbin/haproxy -c -q -f ${shq(configPath)}`);
    if (check.code !== 0) throw new Error(`haproxy rejected ${configPath}:\n${check.stderr}${check.stdout}`);
    const exited = await this.spawnHaproxy(['nsenter', '-t', String(this.lbInitPid), '-n', '-m', '-p', '--'], configPath);
    await waitFor(
      `haproxy on the LB host to listen on ${lb.ip}:80`,
      async () => {
        if (exited()) throw new Error(`haproxy exited\n${await tailFile(this.haproxyLog, 20)}`);
        return (await tcpOpen(lb.ip, 80)) && (await this.lbStatus().then(() => true, () => false));
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    this.lbUrl = `http://${lb.ip}/`;
  }

  /**
   * Starts HAProxy detached (behind `prefix`, e.g. nsenter into the LB host), logging to
   * haproxy.log, its pid in haproxy.pid for teardown.sh; returns whether it has exited since.
   */
  private async spawnHaproxy(prefix: string[], configPath: string): Promise<() => boolean> {
    const log = openSync(this.haproxyLog, 'a');
    // -db: stay in the foreground (we hold the pid) and log to the redirected stderr.
    const argv = [...prefix, '/usr/sbin/haproxy', '-db', '-f', configPath];
    const child = spawn(argv[0] ?? '', argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    await writeFile(join(this.root, 'haproxy.pid'), `${child.pid}\n`);
    let exited = false;
    child.on('exit', () => (exited = true));
    child.on('error', () => (exited = true));
    return () => exited;
  }

  async execLb(command: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    if (!this.lb) throw new Error(`sandbox ${this.id} has no LB host (start it with lbHost: true)`);
    return this.nsExec(this.lbInitPid, command, opts.timeoutMs ?? 60_000, `exec on the LB host of sandbox ${this.id} (${command.slice(0, 80)})`);
  }

  private host(index: number): HostState {
    const host = this.hosts[index - 1];
    if (!Number.isInteger(index) || !host) {
      throw new Error(`sandbox ${this.id}: no host ${index} (hosts are numbered 1..${this.hosts.length})`);
    }
    return host;
  }

  logs(index: number): HostLogs {
    const host = this.host(index);
    return {
      gunicorn: join(host.appDirBacking, 'shared/log/gunicorn-error.log'),
      supervisor: join(host.appDirBacking, 'shared/log/gunicorn-supervisor.log'),
      sshd: join(host.dir, 'sshd.log'),
      init: join(host.dir, 'init.log'),
      uwsgi: join(host.appDirBacking, 'shared/log/uwsgi.log'),
    };
  }

  sshArgs(index: number, opts: { user?: string } = {}): string[] {
    const host = this.host(index);
    return [
      '-F', '/dev/null', // ignore the machine's ssh config
      '-i', this.privateKeyPath,
      '-o', 'IdentitiesOnly=yes',
      '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${this.knownHostsPath}`,
      '-o', 'ConnectTimeout=10',
      '-p', String(host.sshPort),
      `${opts.user ?? this.user}@${host.ip}`,
    ];
  }

  async exec(index: number, command: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    const host = this.host(index);
    return this.nsExec(host.initPid, command, opts.timeoutMs ?? 60_000, `exec on ${host.name} of sandbox ${this.id} (${command.slice(0, 80)})`, this.systemd);
  }

  /**
   * bash -c in the namespaces of the machine whose PID 1 is `initPid`; with `systemdHost` also its
   * uts and cgroup namespaces (its hostname, and cgroup paths as its processes see them).
   */
  private nsExec(initPid: number, command: string, timeoutMs: number, what: string, systemdHost = false): Promise<RunResult> {
    return run(
      'nsenter',
      ['-t', String(initPid), '-n', '-m', '-p', ...(systemdHost ? ['-u', '-C'] : []), '--',
        '/usr/bin/env', '-i', '-C', '/root', 'HOME=/root', 'USER=root', 'LOGNAME=root', 'SHELL=/bin/bash', `PATH=${HOST_PATH}`, 'LANG=C.UTF-8',
        '/bin/bash', '-c', command],
      { timeoutMs, what },
    );
  }

  async seedRelease(index: number, version: string, app: AppOptions): Promise<void> {
    const host = this.host(index);
    if (!RELEASE_NAME.test(version)) throw new Error(`seedRelease: release name '${version}' must match ${RELEASE_NAME}`);
    // Written from the root namespace through the backing dir: same files, no process needed.
    const base = host.appDirBacking;
    const release = join(base, 'releases', version);
    await mkdir(join(base, 'shared', 'log'), { recursive: true });
    await mkdir(join(base, 'run'), { recursive: true });
    await writeRelease(release, { ...app, workers: app.workers ?? this.workers, appDir: this.appDir });
    await writeFile(join(release, 'REVISION'), `${version}\n`);
    // Atomic switch, as a deploy does it: a new link renamed over the old one.
    const temp = join(base, `.current-${process.pid}-${Date.now()}`);
    await symlink(join('releases', version), temp);
    const user = this.deployUserEntry;
    if (user) {
      // The deploy user owns what a deploy writes; run/ and shared/log/ go to the app's user in startGunicornService.
      await runChecked('chown', ['-R', `${user.uid}:${user.gid}`, join(base, 'releases')]);
      await chown(join(base, 'shared'), user.uid, user.gid);
      await lchown(temp, user.uid, user.gid);
    }
    await rename(temp, join(base, 'current'));
  }

  async startGunicorn(index: number, opts: { daemon?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const host = this.host(index);
    const daemon = opts.daemon ?? true;
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const logs = this.logs(index);
    const current = shq(`${this.appDir}/current`);
    const running = await this.exec(index, `pgrep -f ${GUNICORN_PGREP} | tr '\\n' ' '`);
    if (running.stdout.trim()) throw new Error(`startGunicorn: gunicorn already runs on ${host.name} (pids ${running.stdout.trim()})`);

    const gunicorn = `${shq(this.gunicornBin)} -c gunicorn.conf.py app:application`;
    const command = daemon
      ? `cd ${current} && exec ${gunicorn} --daemon`
      : // The supervisor stays gunicorn's parent, like a process manager; PWD (the symlink) is inherited.
        `cd ${current} && exec setsid -f /bin/bash -c 'exec </dev/null >>"$1" 2>&1; ${gunicorn}; echo "supervisor: gunicorn exited with status $?"' gd-supervisor ${shq(logs.supervisor.replace(host.appDirBacking, this.appDir))}`;
    const logStart = await fileSize(logs.gunicorn);
    const launched = await this.exec(index, command, { timeoutMs: 30_000 });
    let lastProbe = 'none yet';
    const explain = async () =>
      `last probe: ${lastProbe}\n${await logSince(logs.gunicorn, logStart)}${daemon ? '' : `\n${await tailFile(logs.supervisor, 15)}`}\n(launcher stderr: ${launched.stderr.trim() || 'empty'})`;
    if (launched.code !== 0) {
      throw new Error(`gunicorn failed to launch on ${host.name} (exit ${launched.code})\n${await explain()}`);
    }

    // The host has its own pid namespace, so "any gunicorn process" means this host's.
    let goneSince: number | undefined;
    await waitFor(
      `gunicorn on ${host.name} to answer 200 on ${HEALTH_URL}`,
      async () => {
        const probe = await this.probe(index);
        if (probe.status === 200) return true;
        lastProbe = probe.status ? `HTTP ${probe.status} (version ${probe.version})` : 'no answer';
        const alive = (await this.exec(index, `pgrep -f ${GUNICORN_PGREP} >/dev/null`)).code === 0;
        if (alive) goneSince = undefined;
        else if (goneSince === undefined) goneSince = Date.now();
        else if (Date.now() - goneSince > 1000) {
          throw new Error(`gunicorn on ${host.name} exited before it was ready\n${await explain()}`);
        }
        return false;
      },
      { timeoutMs, intervalMs: 200, explain },
    );
  }

  async startUwsgi(index: number, opts: { timeoutMs?: number } = {}): Promise<void> {
    const host = this.host(index);
    const log = this.logs(index).uwsgi;
    const logStart = await fileSize(log);
    const launched = await this.exec(index, `cd ${shq(this.appDir)} && /usr/bin/uwsgi --ini ${shq(`${this.appDir}/current/uwsgi.ini`)}`, { timeoutMs: 30_000 });
    const explain = async () => `${await logSince(log, logStart)}\n(launcher: ${launched.stdout.trim()} ${launched.stderr.trim()})`;
    if (launched.code !== 0) throw new Error(`uwsgi failed to launch on ${host.name} (exit ${launched.code})\n${await explain()}`);
    await waitFor(`uwsgi on ${host.name} to answer 200 on ${HEALTH_URL}`, async () => (await this.probe(index)).status === 200, {
      timeoutMs: opts.timeoutMs ?? 60_000,
      intervalMs: 200,
      explain,
    });
  }

  async startGunicornService(index: number, opts: GunicornServiceOptions = {}): Promise<number> {
    const host = this.systemdHost(index, 'startGunicornService');
    const type = opts.type ?? 'notify';
    if (!['notify', 'simple', 'forking'].includes(type)) throw new Error(`startGunicornService: type must be notify, simple or forking, got '${type}'`);
    const socket = opts.socket ?? false;
    const user = opts.user ?? 'www-data';
    const bind = opts.bind ?? [socket ? 'unix:/run/gunicorn.sock' : '0.0.0.0:8000'];
    if (bind.length === 0) throw new Error('startGunicornService: bind must name at least one address');
    const target = probeTargetOf(bind);
    const gunicorn = opts.gunicorn ? await this.gunicornOf(opts.gunicorn) : this.gunicornBin;
    const current = `${this.appDir}/current`;

    const group = await this.exec(index, `id -gn ${shq(user)}`);
    if (group.code !== 0) throw new Error(`startGunicornService: no user '${user}' on ${host.name}: ${group.stderr.trim()}`);
    const running = await this.serviceState(index, 'gunicorn.service');
    if (running.activeState !== 'inactive' && running.activeState !== 'failed') {
      throw new Error(`startGunicornService: gunicorn.service is ${running.activeState} on ${host.name}; stop it first (systemctl stop gunicorn.socket gunicorn.service)`);
    }
    // What the fixture's gunicorn.conf.py writes: its pidfile and ready marks in run/, logs in shared/log/.
    const owned = await this.exec(index, `test -f ${shq(`${current}/gunicorn.conf.py`)} || { echo "no release at ${current}: seedRelease first" >&2; exit 1; }
cd ${shq(this.appDir)} && mkdir -p run shared/log && chown -R ${shq(`${user}:${group.stdout.trim()}`)} run shared/log`);
    if (owned.code !== 0) throw new Error(`startGunicornService on ${host.name}: ${owned.stderr.trim()}`);

    const units = gunicornUnits({ type, socket, user, group: group.stdout.trim(), bind, gunicorn, current });
    await writeFile(join(host.unitsDir, 'gunicorn.service'), units.service);
    if (units.socket) await writeFile(join(host.unitsDir, 'gunicorn.socket'), units.socket);
    else await rm(join(host.unitsDir, 'gunicorn.socket'), { force: true });
    const logs = this.logs(index);
    const logStart = await fileSize(logs.gunicorn);
    const since = (await this.exec(index, 'date +%s.%N')).stdout.trim();
    let lastProbe = 'none yet';
    let lastState: ServiceState | undefined;
    const explain = async () => {
      const journal = await this.exec(index, `journalctl --no-pager -o short-precise --since @${since} -u gunicorn.service -u gunicorn.socket | tail -n 30`);
      return `last probe: ${lastProbe}; gunicorn.service: ${JSON.stringify(lastState)}\n${await logSince(logs.gunicorn, logStart)}\n--- journal of the gunicorn units ---\n${journal.stdout}${journal.stderr}`;
    };
    // Socket activation: systemd listens; the first probe starts the service.
    const reloaded = await this.systemctl(index, 'daemon-reload');
    const started = reloaded.code === 0 ? await this.systemctl(index, 'start', socket ? 'gunicorn.socket' : 'gunicorn.service') : reloaded;
    if (started.code !== 0) throw new Error(`startGunicornService: systemctl start failed on ${host.name} (exit ${started.code}): ${started.stderr.trim()}\n${await explain()}`);

    await waitFor(
      `gunicorn.service on ${host.name} to answer 200 on ${target.unixSocket ? `${target.unixSocket} ` : ''}${target.url}`,
      async () => {
        const probe = await this.probe(index, target);
        lastState = await this.serviceState(index, 'gunicorn.service');
        if (probe.status === 200 && lastState.activeState === 'active' && lastState.mainPid > 0) return true;
        lastProbe = probe.status ? `HTTP ${probe.status} (version ${probe.version})` : 'no answer';
        if (lastState.activeState === 'failed') throw new Error(`gunicorn.service failed on ${host.name}\n${await explain()}`);
        return false;
      },
      { timeoutMs: opts.timeoutMs ?? 60_000, intervalMs: 200, explain },
    );
    return lastState?.mainPid ?? 0;
  }

  async systemctl(index: number, ...args: string[]): Promise<RunResult> {
    this.systemdHost(index, 'systemctl');
    return this.exec(index, `systemctl ${args.map(shq).join(' ')}`);
  }

  async serviceState(index: number, unit: string): Promise<ServiceState> {
    const host = this.systemdHost(index, 'serviceState');
    const shown = await this.systemctl(index, 'show', unit, '--property=MainPID,ActiveState,SubState');
    if (shown.code !== 0) throw new Error(`systemctl show ${unit} failed on ${host.name} (exit ${shown.code}): ${shown.stderr.trim()}`);
    const values = new Map(shown.stdout.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as const));
    const mainPid = Number(values.get('MainPID') ?? 0); // units without processes (sockets, targets) have none
    const activeState = values.get('ActiveState');
    const subState = values.get('SubState');
    if (!Number.isInteger(mainPid) || !activeState || !subState) throw new Error(`systemctl show ${unit} on ${host.name}: unexpected output '${shown.stdout.trim()}'`);
    return { mainPid, activeState, subState };
  }

  async setSudoers(index: number, rules: string): Promise<void> {
    const host = this.host(index);
    if (!this.deployUser) throw new Error(`sandbox ${this.id} has no deploy user (start it with sudoUser: true)`);
    // A file sudo rejects would lock the deploy user out: check it before it replaces the old one.
    const file = join(host.dir, 'sudoers.d', DEPLOY_USER);
    const temp = join(host.dir, `sudoers.${process.pid}.tmp`);
    await writeFile(temp, rules.endsWith('\n') ? rules : `${rules}\n`, { mode: 0o440 });
    const check = await run('visudo', ['-c', '-q', '-f', temp]);
    if (check.code !== 0) {
      await rm(temp, { force: true });
      throw new Error(`setSudoers: visudo rejects the rules for ${host.name}: ${(check.stderr + check.stdout).trim()}`);
    }
    await rename(temp, file);
  }

  /** Host `index`, which must be a systemd host. */
  private systemdHost(index: number, what: string): HostState & { unitsDir: string } {
    const host = this.host(index);
    if (!host.unitsDir) throw new Error(`${what}: sandbox ${this.id} runs no systemd (start it with systemd: true)`);
    return { ...host, unitsDir: host.unitsDir };
  }

  async probe(index: number, target: ProbeTarget = {}): Promise<{ status: number; version: string | null }> {
    const url = target.url ?? (target.unixSocket ? UNIX_HEALTH_URL : HEALTH_URL);
    const via = target.unixSocket ? `--unix-socket ${shq(target.unixSocket)} ` : '';
    // Last line: "<status> <X-App-Version header>"; the body (JSON) before it.
    const result = await this.exec(index, `curl -s -m 5 ${via}-w '\\n%{http_code} %header{x-app-version}' ${shq(url)}`, { timeoutMs: 15_000 });
    const lines = result.stdout.split('\n');
    const [statusText = '0', header = ''] = (lines.pop() ?? '').split(' ');
    let version: string | null = header.trim() || null;
    try {
      const body = JSON.parse(lines.join('\n')) as { version?: unknown };
      if (typeof body.version === 'string') version = body.version;
    } catch {
      /* not JSON: keep the header */
    }
    return { status: Number(statusText) || 0, version };
  }

  async lbStatus(): Promise<Record<string, string>> {
    return this.lbColumn('status');
  }

  async lbWeights(): Promise<Record<string, number>> {
    return Object.fromEntries(Object.entries(await this.lbColumn('weight')).map(([server, weight]) => [server, Number(weight)]));
  }

  /** One column of `show stat` for each server of backend app. */
  private async lbColumn(column: string): Promise<Record<string, string>> {
    const csv = await adminCommand(this.haproxySocket, 'show stat');
    const [header, ...rows] = csv.trim().split('\n');
    const columns = (header ?? '').replace(/^# /, '').split(',');
    const [px, sv, value] = ['pxname', 'svname', column].map((name) => columns.indexOf(name));
    const result: Record<string, string> = {};
    for (const row of rows) {
      const fields = row.split(',');
      if (fields[px] === 'app' && fields[sv] !== 'BACKEND') result[fields[sv]] = fields[value] ?? '';
    }
    return result;
  }

  async waitForLb(opts: { timeoutMs?: number } = {}): Promise<void> {
    let last: Record<string, string> = {};
    await waitFor(
      'HAProxy to see every server UP',
      async () => {
        last = await this.lbStatus();
        return this.hosts.every((host) => last[host.name] === 'UP');
      },
      { timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 100, explain: async () => `last status: ${JSON.stringify(last)}\n${await tailFile(this.haproxyLog, 20)}` },
    );
  }

  async dropBastionSessions(): Promise<number> {
    if (!this.bastion) throw new Error(`sandbox ${this.id} has no bastion (start it with bastion: true)`);
    const pids = (await runChecked('ip', ['netns', 'pids', `gd${this.id}jb`])).stdout.split(/\s+/).filter(Boolean);
    let killed = 0;
    for (const pid of pids) {
      // A connection's processes are titled `sshd: root...` (`@notty` once it has a session);
      // the listener, `sshd: /usr/sbin/sshd -D ... [listener] ...`, must live on.
      const title = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (!title.startsWith('sshd: ') || title.includes('[listener]')) continue;
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed += 1;
      } catch {
        /* gone already */
      }
    }
    return killed;
  }

  stop(): Promise<void> {
    this.stopping ??= run(join(SCRIPTS, 'teardown.sh'), [this.id], { timeoutMs: 60_000 })
      .then(
        (result) => {
          if (result.code !== 0 || result.stderr.trim()) console.warn(`sandbox ${this.id} teardown: ${result.stderr.trim()}`);
        },
        (error: unknown) => {
          console.warn(`sandbox ${this.id} teardown failed: ${String(error)}; run test/sandbox/cleanup.sh`);
        },
      )
      .finally(() => live.delete(this.id));
    return this.stopping;
  }
}

function sshdConfig(p: { ip: string; dir: string; hostKey: string; authorizedKeys: string }): string {
  return `# sshd of one graceful-deploy sandbox host (test/support/sandbox.ts)
ListenAddress ${p.ip}:22
HostKey ${p.hostKey}
# The default /run/sshd.pid would be shared by every host (and the machine's own sshd).
PidFile ${p.dir}/sshd.pid
AuthorizedKeysFile ${p.authorizedKeys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The run dir lives in /tmp, whose permissions StrictModes would reject.
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
LogLevel VERBOSE
`;
}

function haproxyConfig(p: { bind: string; sockets: string[]; hosts: SandboxHost[]; weight?: number }): string {
  const weight = p.weight === undefined ? '' : ` weight ${p.weight}`;
  const servers = p.hosts.map((host) => `    server ${host.name} ${host.ip}:8000 check${weight}`).join('\n');
  return `# HAProxy of one graceful-deploy sandbox (test/support/sandbox.ts)
global
    log stderr format raw local0 info
    # Admin sockets: the run dir's for tests (lbStatus), and on an LB host the one the action
    # uses; unix sockets only, nothing on the network.
${p.sockets.map((socket) => `    stats socket ${socket} mode 600 level admin`).join('\n')}
    maxconn 4000

defaults
    mode http
    log global
    option httplog
    # Log only what matters after a failed test: errors, retries, redispatches, server UP/DOWN.
    option dontlog-normal
    option log-health-checks
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout queue 10s
    timeout check 2s
    retries 3
    option redispatch
    # Retry only requests the app never answered; an HTTP error from the app goes to the client,
    # so tests see it.
    retry-on conn-failure empty-response response-timeout

frontend fe
    bind ${p.bind}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
    # Which host answered, for tests (load.ts counts it per server).
    http-response set-header X-Backend-Server %s
${servers}
`;
}

async function fileSize(path: string): Promise<number> {
  return stat(path).then((info) => info.size, () => 0);
}

/**
 * What a log got since `offset`, shortened to its head and tail: the head holds the first
 * traceback (a worker's import error), the tail the master's last words.
 */
async function logSince(path: string, offset: number): Promise<string> {
  let text: string;
  try {
    text = (await readFile(path)).subarray(offset).toString('utf8');
  } catch {
    return `--- ${path}: (missing) ---`;
  }
  const lines = text.trimEnd().split('\n');
  const shown = lines.length > 70 ? [...lines.slice(0, 45), `[... ${lines.length - 70} lines ...]`, ...lines.slice(-25)] : lines;
  return `--- ${path} (this start) ---\n${shown.join('\n') || '(empty)'}`;
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** One command on HAProxy's admin socket; the socket closes after the answer. */
function adminCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: socketPath });
    let answer = '';
    socket.setEncoding('utf8');
    socket.setTimeout(5000, () => socket.destroy(new Error(`no answer from ${socketPath} to '${command}'`)));
    socket.on('connect', () => socket.write(`${command}\n`));
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
  });
}

/**
 * Where the app's /health/ready answers for gunicorn bind addresses: the first TCP one (0.0.0.0
 * and :: through the loopback), else the first unix socket.
 */
function probeTargetOf(bind: string[]): ProbeTarget {
  const tcp = bind.find((address) => !address.startsWith('unix:'));
  if (!tcp) return { unixSocket: (bind[0] ?? '').slice('unix:'.length) };
  const colon = tcp.lastIndexOf(':');
  const address = colon > 0 ? tcp.slice(0, colon) : '';
  const port = colon >= 0 ? tcp.slice(colon + 1) : tcp;
  const hostPart = ['', '0.0.0.0', '[::]'].includes(address) ? '127.0.0.1' : address;
  return { url: `http://${hostPart}:${port}/health/ready` };
}

/** Quotes a value as one shell word. */
function shq(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
