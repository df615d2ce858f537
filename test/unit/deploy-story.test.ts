import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseSettings } from '../../src/config/input-helper.js';
import type { HostTarget, Settings } from '../../src/config/settings.js';
import { deploy, DeployFailed, type DeployDependencies } from '../../src/deploy.js';
import { CancelledError, HostUnreachableError, LeftoverStateError, MasterCheckError, PreflightError, ReloadError } from '../../src/errors.js';
import { ReloadFailure } from '../../src/servers/server-driver.js';
import { faultedOutcome, guardRejections } from '../../src/rejection-guard.js';
import type { ExecResult, RemoteHost } from '../../src/remote/remote-host.js';
import type { DeployOutcome, HostReport, Reporter } from '../../src/report/reporter.js';
import type { AroundOptions, Balancer } from '../../src/balancer/balancer.js';
import type { Log, ReloadHandle, ServerDriver, ServerProcess, Settled } from '../../src/servers/server-driver.js';
import { LocalHost } from './support/local-host.js';

/**
 * The deploy story against hosts that are scratch directories (commands run in a real
 * shell) and a scripted server: checks order, rollback and what ends up on disk.
 */
type Behaviour = 'ok' | 'never-ready' | 'redirects' | 'degrades' | 'reload-fails' | 'new-master-dies' | 'master-halts' | 'import-fails' | 'connection-lost' | 'connection-lost-in-strategy';

class ScriptedServer implements ServerDriver {
  readonly serving = new Map<string, string>();
  readonly events: string[] = [];
  readonly behaviour = new Map<string, Behaviour>();
  private nextPid = 1000;
  readonly halted = new Set<string>();
  /** Hosts whose SSH connection is gone: every later command there fails. */
  readonly lost = new Set<string>();

  constructor(private readonly dirs: Map<string, string>) {}

  behaviourOf(host: string, release: string): Behaviour {
    return this.behaviour.get(`${host}/${release}`) ?? 'ok';
  }

  async inspect(host: RemoteHost): Promise<ServerProcess> {
    if (this.halted.has(host.name)) throw new MasterCheckError('pidfile names pid 1, which is not running', host.name);
    return { pid: 1, workers: [2, 3], python: '/usr/bin/python3' };
  }

  /** Hosts settled, in order (kept apart from `events`, which tell the reload story). */
  readonly settled: string[] = [];

  async settle(host: RemoteHost): Promise<Settled> {
    this.settled.push(host.name);
    return { found: 'consistent', repaired: false };
  }

  async preflight(host: RemoteHost, _server: ServerProcess, releaseDir: string): Promise<void> {
    const release = path.basename(releaseDir);
    this.events.push(`preflight ${host.name} ${release}`);
    if (this.behaviourOf(host.name, release) === 'import-fails') throw new PreflightError('ImportError: boom', host.name);
  }

  async reload(host: RemoteHost, _server: ServerProcess, _log: Log): Promise<ReloadHandle> {
    const release = path.basename(readlinkSync(path.join(this.dirs.get(host.name)!, 'current')));
    this.events.push(`reload ${host.name} ${release}`);
    if (this.behaviourOf(host.name, release) === 'reload-fails') throw new ReloadError('workers never came', host.name);
    if (this.behaviourOf(host.name, release) === 'master-halts') {
      this.halted.add(host.name);
      throw new ReloadError('gunicorn master 1 exited', host.name);
    }
    const behaviour = this.behaviourOf(host.name, release);
    if (behaviour === 'connection-lost' || behaviour === 'connection-lost-in-strategy') {
      this.lost.add(host.name);
      const lost = new HostUnreachableError('lost the SSH connection during read the new workers (Keepalive timeout)', host.name);
      // usr2 and rolling wrap whatever stops them in a ReloadFailure.
      throw behaviour === 'connection-lost' ? lost : new ReloadFailure(lost, host.name, false);
    }
    if (this.behaviourOf(host.name, release) === 'new-master-dies') throw new ReloadFailure(new ReloadError('new master exited', host.name), host.name, true);
    const before = this.serving.get(host.name)!;
    this.serving.set(host.name, release);
    const master = { pid: this.nextPid++, workers: [1, 2], python: '/usr/bin/python3' };
    return {
      master,
      commit: async () => {
        this.events.push(`commit ${host.name} ${release}`);
        return master;
      },
      revert: async () => {
        this.events.push(`revert ${host.name} → ${before}`);
        this.serving.set(host.name, before);
        return { pid: 1, workers: [5, 6], python: '/usr/bin/python3' };
      },
    };
  }

  /** The readiness answer of a host: its serving release, 503 when that release never gets ready. */
  private readonly probes = new Map<string, number>();

  readiness(host: string): string {
    const release = this.serving.get(host)!;
    const behaviour = this.behaviourOf(host, release);
    // 'degrades': passes the gate (a few answers), then stops answering ready.
    const count = (this.probes.get(`${host}/${release}`) ?? 0) + 1;
    this.probes.set(`${host}/${release}`, count);
    // 'redirects': the app sends the probe to https (Django's SECURE_SSL_REDIRECT).
    if (behaviour === 'redirects') return JSON.stringify({ status: 301, version: null, location: 'https://www.example.com/health/ready', body: '' });
    const ready = behaviour !== 'never-ready' && !(behaviour === 'degrades' && count > 4);
    return JSON.stringify({ status: ready ? 200 : 503, version: release, body: ready ? 'ok' : 'warming up' });
  }
}

/** Warnings of the current test's runs. */
let warnings: string[] = [];
const silent: Reporter = { group: (_title, body) => body(), log: () => undefined, warn: (line) => warnings.push(line) };
/** Answers a host's command by purpose instead of running it (e.g. a prune that fails); undefined runs it. */
let scripted: (host: string, purpose: string) => ExecResult | undefined = () => undefined;
/** Commands whose answer is lost on the way back: they run on the host, then the connection fails. */
let answerLost: (host: string, purpose: string) => boolean = () => false;

let base: string;
let dirs: Map<string, string>;
let server: ScriptedServer;
let hosts: Map<string, LocalHost>;
let source: string;

beforeEach(() => {
  warnings = [];
  scripted = () => undefined;
  answerLost = () => false;
  base = mkdtempSync(path.join(tmpdir(), 'gd-story-'));
  dirs = new Map();
  hosts = new Map();
  server = new ScriptedServer(dirs);
  source = path.join(base, 'source');
  mkdirSync(source);
  writeFileSync(path.join(source, 'app.py'), 'print("v2")');
  for (const name of ['web1', 'web2', 'web3']) {
    const appDir = path.join(base, name);
    mkdirSync(path.join(appDir, 'releases/v1'), { recursive: true });
    symlinkSync('releases/v1', path.join(appDir, 'current'));
    dirs.set(`deploy@${name}`, appDir);
    server.serving.set(`deploy@${name}`, 'v1');
  }
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

/** Each host's app-dir is its own scratch dir, so the story's single app-dir is rewritten per host. */
async function run(inputs: Record<string, string> = {}, extra: Partial<DeployDependencies> = {}, adjust?: (settings: Settings) => void): Promise<DeployOutcome> {
  const all: Record<string, string> = {
    hosts: 'web1,web2,web3',
    user: 'deploy',
    'ssh-key': '-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----',
    'known-hosts': 'web1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    'app-dir': '/APPDIR',
    source,
    release: 'v2',
    'health-timeout': '2',
    'health-interval': '0.1',
    'health-successes': '2',
    // Most stories are told host by host; the fleet stories below pass '' to get the default plan.
    'max-parallel': '1',
    'batch-size': '1',
    ...inputs,
  };
  const settings = parseSettings((name) => all[name] ?? '', {});
  // Settings the inputs refuse, to test the story's own guard behind that validation.
  adjust?.(settings);
  const connect = async (target: HostTarget) => {
    const appDir = dirs.get(target.label)!;
    const host = new LocalHost(target.label, (purpose) =>
      purpose === 'readiness probe' ? { stdout: server.readiness(target.label), stderr: '', code: 0 } : scripted(target.label, purpose),
    );
    // Same code path as a real host: only the app dir differs, as if each host mounted its own.
    const exec = host.exec.bind(host);
    host.exec = (purpose, command, options) => {
      if (server.lost.has(target.label)) {
        server.events.push(`unreachable ${target.label}: ${purpose}`);
        return Promise.reject(new HostUnreachableError('the SSH connection was lost and 3 attempts to reconnect failed', target.label));
      }
      const done = exec(purpose, { ...command, text: command.text.replaceAll('/APPDIR', appDir) }, options);
      if (!answerLost(target.label, purpose)) return done;
      return done.then(() => Promise.reject(new HostUnreachableError(`lost the SSH connection during ${purpose} (read ECONNRESET)`, target.label)));
    };
    const upload = host.upload.bind(host);
    host.upload = (purpose, local, remote) => upload(purpose, local, remote.replaceAll('/APPDIR', appDir));
    hosts.set(target.label, host);
    return host;
  };
  return deploy(settings, { connect, server, reporter: silent, ...extra });
}

async function failure(inputs: Record<string, string> = {}, extra: Partial<DeployDependencies> = {}, adjust?: (settings: Settings) => void): Promise<DeployOutcome> {
  const error = await run(inputs, extra, adjust).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(DeployFailed);
  return (error as DeployFailed).outcome;
}

/** Puts another run's lock on a host, its heartbeat `ageSeconds` old; returns the lock dir. */
function holdLock(name: string, ageSeconds: number): string {
  const lock = path.join(dirs.get(`deploy@${name}`)!, '.deploy-lock');
  mkdirSync(lock);
  writeFileSync(path.join(lock, 'owner'), 'token=other\nrun=acme/shop#41\nactor=alice\n');
  writeFileSync(path.join(lock, 'heartbeat'), '');
  const then = new Date(Date.now() - ageSeconds * 1000);
  utimesSync(path.join(lock, 'heartbeat'), then, then);
  return lock;
}

const auditOf = (name: string) => readFileSync(path.join(dirs.get(`deploy@${name}`)!, 'deploy.log'), 'utf8').trim().split('\n');

const currentOf = (name: string) => readlinkSync(path.join(dirs.get(`deploy@${name}`)!, 'current'));
const previousOf = (name: string) => readlinkSync(path.join(dirs.get(`deploy@${name}`)!, 'previous'));

describe('deploy story', () => {
  it('stages everywhere, then switches, reloads and commits host by host', async () => {
    const outcome = await run();
    expect(outcome.status).toBe('deployed');
    expect(outcome.previousRelease).toBe('v1');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['deployed', 'deployed', 'deployed']);
    for (const name of ['web1', 'web2', 'web3']) {
      expect(currentOf(name)).toBe('releases/v2');
      expect(previousOf(name)).toBe('releases/v1');
      expect(existsSync(path.join(dirs.get(`deploy@${name}`)!, 'releases/v2/app.py'))).toBe(true);
      expect(existsSync(path.join(dirs.get(`deploy@${name}`)!, '.deploy-lock'))).toBe(false);
    }
    expect(server.events).toEqual([
      'preflight deploy@web1 v2',
      'preflight deploy@web2 v2',
      'preflight deploy@web3 v2',
      'reload deploy@web1 v2',
      'commit deploy@web1 v2',
      'reload deploy@web2 v2',
      'commit deploy@web2 v2',
      'reload deploy@web3 v2',
      'commit deploy@web3 v2',
    ]);
  });

  it("times every host's phases in the hosts output, in the order they ran", async () => {
    const outcome = await run();
    for (const host of outcome.hosts) {
      expect(host.timeline?.map((span) => span.phase)).toEqual(['connect', 'lock', 'inspect', 'stage', 'check', 'switch', 'reload', 'gate', 'commit']);
      expect(host.timeline?.every((span) => span.ok && span.seconds >= 0 && !Number.isNaN(Date.parse(span.start)))).toBe(true);
    }
  });

  it('marks the failed gate and times the way back on each host put back', async () => {
    server.behaviour.set('deploy@web2/v2', 'never-ready');
    const outcome = await failure();
    const phases = (name: string) => outcome.hosts.find((host) => host.host === name)?.timeline?.map((span) => `${span.phase}${span.ok ? '' : ' (failed)'}`);
    expect(phases('deploy@web2')?.slice(-3)).toEqual(['reload', 'gate (failed)', 'revert']);
    expect(phases('deploy@web1')?.slice(-3)).toEqual(['gate', 'commit', 'revert']);
    expect(phases('deploy@web3')).toEqual(['connect', 'lock', 'inspect', 'stage', 'check']);
  });

  it('puts the failing host and every host before it back when the gate fails', async () => {
    server.behaviour.set('deploy@web2/v2', 'never-ready');
    const outcome = await failure();
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/did not pass 2 checks in a row/);
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'rolled-back', 'pending']);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
    expect([...server.serving.values()]).toEqual(['v1', 'v1', 'v1']);
    expect(server.events.slice(3)).toEqual([
      'reload deploy@web1 v2',
      'commit deploy@web1 v2',
      'reload deploy@web2 v2',
      'revert deploy@web2 → v1',
      'reload deploy@web1 v1',
      'commit deploy@web1 v1',
    ]);
  });

  it('reloads the previous release on a host whose reload failed before it had a handle', async () => {
    server.behaviour.set('deploy@web1/v2', 'reload-fails');
    const outcome = await failure();
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.hosts[0]?.status).toBe('rolled-back');
    expect(currentOf('web1')).toBe('releases/v1');
    expect(server.events.slice(3)).toEqual(['reload deploy@web1 v2', 'reload deploy@web1 v1', 'commit deploy@web1 v1']);
  });

  it('only switches back when the old generation never stopped serving', async () => {
    server.behaviour.set('deploy@web2/v2', 'new-master-dies');
    const outcome = await failure();
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/new master exited/);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
    expect(server.events.slice(3)).toEqual(['reload deploy@web1 v2', 'commit deploy@web1 v2', 'reload deploy@web2 v2', 'reload deploy@web1 v1', 'commit deploy@web1 v1']);
  });

  it('reports failed, not rolled-back, when a host cannot be put back', async () => {
    server.behaviour.set('deploy@web2/v2', 'master-halts');
    const outcome = await failure();
    expect(outcome.status).toBe('failed');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'failed', 'pending']);
    expect(outcome.error).toMatch(/NOT rolled back — check by hand: deploy@web2: rollback failed: .*not running/);
    expect(currentOf('web1')).toBe('releases/v1');
  });

  it.each(['connection-lost', 'connection-lost-in-strategy'] as const)('puts the other hosts back first when one becomes unreachable (%s), names it, and releases the locks it can', async (behaviour) => {
    server.behaviour.set('deploy@web2/v2', behaviour);
    const outcome = await failure();
    expect(outcome.status).toBe('failed');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'failed', 'pending']);
    expect(outcome.error).toMatch(/^\[deploy@web2\] lost the SSH connection[\s\S]*NOT rolled back — check by hand: deploy@web2: rollback failed: .*reconnect failed/);
    // web1 is put back before the story spends any time on web2.
    expect(server.events.slice(3)).toEqual([
      'reload deploy@web1 v2',
      'commit deploy@web1 v2',
      'reload deploy@web2 v2',
      'reload deploy@web1 v1',
      'commit deploy@web1 v1',
      'unreachable deploy@web2: switch current back to v1',
      'unreachable deploy@web2: append to the audit log and release the deploy lock',
    ]);
    expect(currentOf('web1')).toBe('releases/v1');
    for (const name of ['web1', 'web3']) expect(existsSync(path.join(dirs.get(`deploy@${name}`)!, '.deploy-lock'))).toBe(false);
  });

  it('a master check that fails while current moves is a host failure put back, not a crash (no unhandled rejection)', async () => {
    const inspect = server.inspect.bind(server);
    let calls = 0;
    // The second inspect of web1 is the one that runs beside the switch; it fails at once, long before the switch's shell ends.
    server.inspect = async (host) => {
      if (host.name === 'deploy@web1' && ++calls === 2) throw new MasterCheckError('pidfile names pid 1, which was replaced meanwhile', host.name);
      return inspect(host);
    };
    const escaped: unknown[] = [];
    const hear = (reason: unknown) => escaped.push(reason);
    process.on('unhandledRejection', hear);
    const outcome = await failure().finally(() => process.off('unhandledRejection', hear));
    expect(escaped, 'rejections no one handled (Node 24 exits on them)').toEqual([]);
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/replaced meanwhile/);
    expect(currentOf('web1')).toBe('releases/v1');
    expect(server.events.slice(3)).toEqual(['reload deploy@web1 v1', 'commit deploy@web1 v1']);
    expect(existsSync(path.join(dirs.get('deploy@web1')!, '.deploy-lock'))).toBe(false);
  });

  it('leaves hosts as they are with rollback: never', async () => {
    server.behaviour.set('deploy@web2/v2', 'never-ready');
    const outcome = await failure({ rollback: 'never' });
    expect(outcome.status).toBe('failed');
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v2', 'releases/v1']);
  });

  it('changes nothing served when a release cannot be imported', async () => {
    server.behaviour.set('deploy@web3/v2', 'import-fails');
    const outcome = await failure();
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatch(/ImportError/);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
    expect(server.events.filter((event) => event.startsWith('reload'))).toEqual([]);
  });

  it('removes the copies a failed check left, so that the same release deploys once the cause is fixed', async () => {
    server.behaviour.set('deploy@web3/v2', 'import-fails');
    expect((await failure()).status).toBe('failed');
    for (const name of ['web1', 'web2', 'web3']) expect(existsSync(path.join(dirs.get(`deploy@${name}`)!, 'releases/v2')), name).toBe(false);
    server.behaviour.delete('deploy@web3/v2');
    expect((await run()).status).toBe('deployed');
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v2', 'releases/v2']);
  });

  it('stops before any switch when the running release already redirects the readiness probe, saying where to', async () => {
    server.behaviour.set('deploy@web2/v1', 'redirects');
    const outcome = await failure({ 'health-timeout': '60' });
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatch(/deploy@web2.*answered 301, a redirect to https:\/\/www\.example\.com\/health\/ready[\s\S]*health-host/);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
    expect(server.events.filter((event) => event.startsWith('reload'))).toEqual([]);
  });

  it('rolls a host back at its first redirected gate reading, not at health-timeout', async () => {
    server.behaviour.set('deploy@web1/v2', 'redirects');
    const started = Date.now();
    const outcome = await failure({ 'health-timeout': '60' });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/answered 301, a redirect to https:\/\/www\.example\.com\/health\/ready/);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(currentOf('web1')).toBe('releases/v1');
  });

  it('refuses when another live run holds a lock (lock-wait 0), naming it, and leaves that lock alone', async () => {
    const lock = holdLock('web2', 0);
    const outcome = await failure({ 'lock-wait': '0' });
    expect(outcome.error).toMatch(/another deploy holds .*run acme\/shop#41 .*lock-wait is 0/);
    expect(existsSync(lock)).toBe(true);
    expect(existsSync(path.join(dirs.get('deploy@web1')!, '.deploy-lock'))).toBe(false);
    expect(existsSync(path.join(dirs.get('deploy@web1')!, 'releases/v2'))).toBe(false);
  });
  it('a re-run of a deploy that succeeded changes nothing and says so (if-current: skip, the default)', async () => {
    await run();
    server.events.length = 0;
    const again = await run();
    expect(again.status).toBe('unchanged');
    expect(again.hosts.map((host) => host.status)).toEqual(['unchanged', 'unchanged', 'unchanged']);
    expect(server.events).toEqual([]);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v2', 'releases/v2']);
    expect(previousOf('web1')).toBe('releases/v1');
    expect(auditOf('web1').at(-1)).toMatch(/ deploy v2 -> v2 strategy=auto result=unchanged /);
  });

  it('if-current: fail refuses a release already current; skip refuses one current on some hosts only', async () => {
    await run();
    expect((await failure({ 'if-current': 'fail' })).error).toMatch(/release v2 is already current on deploy@web1, deploy@web2, deploy@web3 \(if-current: fail\)/);
    // web3 back on v1 by hand: the fleet is mixed.
    symlinkSync('releases/v1', path.join(dirs.get('deploy@web3')!, 'current.x'));
    rmSync(path.join(dirs.get('deploy@web3')!, 'current'));
    symlinkSync('releases/v1', path.join(dirs.get('deploy@web3')!, 'current'));
    rmSync(path.join(dirs.get('deploy@web3')!, 'current.x'));
    server.serving.set('deploy@web3', 'v1');
    const mixed = await failure({ source: '' });
    expect(mixed.error).toMatch(/already current on deploy@web1, deploy@web2 but not on deploy@web3 \(on v1\).*if-current: redeploy/);
  });

  it('if-current: skip refuses a current release that does not pass its readiness check', async () => {
    await run();
    server.behaviour.set('deploy@web2/v2', 'never-ready');
    const outcome = await failure();
    expect(outcome.error).toMatch(/already current on every host, but deploy@web2 does not serve it \(status 503\)\. Set if-current: redeploy/);
  });

  it('if-current: redeploy reloads the current release in place: nothing staged, previous kept', async () => {
    await run();
    writeFileSync(path.join(source, 'app.py'), 'print("changed")');
    server.events.length = 0;
    const again = await run({ 'if-current': 'redeploy' });
    expect(again.status).toBe('deployed');
    expect(server.events.filter((event) => event.startsWith('reload'))).toEqual(['reload deploy@web1 v2', 'reload deploy@web2 v2', 'reload deploy@web3 v2']);
    expect(readFileSync(path.join(dirs.get('deploy@web1')!, 'releases/v2/app.py'), 'utf8')).toBe('print("v2")');
    expect(previousOf('web1')).toBe('releases/v1');
    expect(again.hosts[0]?.rollbackTarget).toBe('v1');
  });

  it('never replaces a release already on a host: refused on every host before any change', async () => {
    mkdirSync(path.join(dirs.get('deploy@web2')!, 'releases/v2'));
    writeFileSync(path.join(dirs.get('deploy@web2')!, 'releases/v2/app.py'), 'kept');
    const outcome = await failure();
    expect(outcome.error).toMatch(/\[deploy@web2\] \/APPDIR\/releases\/v2 already exists \(not current\): a deploy never replaces a release on disk\. Deploy that copy as it is with source: '' \(empty\)/);
    expect(server.events).toEqual([]);
    expect(readFileSync(path.join(dirs.get('deploy@web2')!, 'releases/v2/app.py'), 'utf8')).toBe('kept');
    for (const name of ['web1', 'web3']) expect(existsSync(path.join(dirs.get(`deploy@${name}`)!, 'releases/v2'))).toBe(false);
    // The copy already there deploys as it is with source empty.
    for (const name of ['web1', 'web3']) mkdirSync(path.join(dirs.get(`deploy@${name}`)!, 'releases/v2'));
    expect((await run({ source: '' })).status).toBe('deployed');
  });

  it('mode rollback returns every host to the previous release; a second rollback goes further back, not forward', async () => {
    await run();
    await run({ release: 'v3' });
    const back = await run({ mode: 'rollback', source: '', release: '' });
    expect(back.status).toBe('deployed');
    expect(back.release).toBe('v2');
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v2', 'releases/v2']);
    expect(previousOf('web1')).toBe('releases/v1');
    expect(back.rollbackTarget).toBe('v1');
    expect([...server.serving.values()]).toEqual(['v2', 'v2', 'v2']);

    const again = await run({ mode: 'rollback', source: '', release: '' });
    expect(again.release).toBe('v1');
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
    // Nothing older than v1: the link goes, and a third rollback needs a release name.
    expect(existsSync(path.join(dirs.get('deploy@web1')!, 'previous'))).toBe(false);
    expect(again.rollbackTarget).toBe('');
    expect((await failure({ mode: 'rollback', source: '', release: '' })).error).toMatch(/no previous release to roll back to/);
  });

  it('mode rollback with a release goes to that release, if every host still has it', async () => {
    await run();
    await run({ release: 'v3' });
    const missing = await failure({ mode: 'rollback', release: 'v0' });
    expect(missing.error).toMatch(/\[deploy@web1\] release v0 is not on this host, so there is nothing to roll back to\. Releases on disk \(oldest first\): v1, v2, v3\./);
    expect(server.events.filter((event) => event.includes('v0'))).toEqual([]);
    expect(currentOf('web1')).toBe('releases/v3');

    const named = await run({ mode: 'rollback', release: 'v1' });
    expect(named.release).toBe('v1');
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
    expect(named.previousRelease).toBe('v3');
    // A rollback to a release already current everywhere is a no-op, like a re-run.
    expect((await run({ mode: 'rollback', release: 'v1' })).status).toBe('unchanged');
  });

  it('mode rollback without a previous release is a clear error', async () => {
    const outcome = await failure({ mode: 'rollback', release: '' });
    expect(outcome.error).toMatch(/no previous release/);
  });

  it('mode migrate runs only the migration step, in a scratch copy of the release that it removes; nothing switches or reloads', async () => {
    const seen: string[] = [];
    const migrate: DeployDependencies['migrate'] = async (host, _python, releaseDir) => {
      seen.push(`${host.name} ${releaseDir} ${readFileSync(path.join(releaseDir.replaceAll('/APPDIR', dirs.get(host.name)!), 'app.py'), 'utf8')}`);
      return { skipped: false, revisionBefore: 'r1', revisionAfter: 'r2', findings: [], dialect: 'postgresql' };
    };
    const outcome = await run({ mode: 'migrate', 'migrate-command': 'alembic upgrade head', 'migrate-host': 'web2' }, { migrate });
    expect(outcome.status).toBe('migrated');
    expect(seen).toEqual([expect.stringMatching(/^deploy@web2 \/APPDIR\/releases\/\.migrate-v2-[0-9a-f]+ print\("v2"\)$/)]);
    expect(outcome.migration).toMatchObject({ host: 'deploy@web2', revisionAfter: 'r2' });
    expect(outcome.hosts.map((host) => host.status)).toEqual(['pending', 'migrated', 'pending']);
    expect(server.events).toEqual([]);
    for (const name of ['web1', 'web2', 'web3']) {
      expect(currentOf(name)).toBe('releases/v1');
      expect(readdirSync(path.join(dirs.get(`deploy@${name}`)!, 'releases'))).toEqual(['v1']);
    }
    // A deploy of the same release afterwards stages it as usual.
    expect((await run({}, { migrate })).status).toBe('deployed');
  });

  it('settles every host after taking its lock, removing what dead runs staged; a host that cannot be settled stops the run before any change', async () => {
    const web2 = dirs.get('deploy@web2')!;
    mkdirSync(path.join(web2, 'releases/.incoming-v9-0badc0de'));
    symlinkSync('releases/v9', path.join(web2, 'current.0badc0de'));
    let progress: string[] = [];
    const outcome = await run({}, { progress: (host, phase) => progress.push(`${host} ${phase}`) });
    expect(outcome.status).toBe('deployed');
    expect(server.settled).toEqual(['deploy@web1', 'deploy@web2', 'deploy@web3']);
    expect(existsSync(path.join(web2, 'releases/.incoming-v9-0badc0de'))).toBe(false);
    expect(existsSync(path.join(web2, 'current.0badc0de'))).toBe(false);
    expect(progress.slice(0, 7)).toEqual(['deploy@web1 locking', 'deploy@web1 locked', 'deploy@web2 locking', 'deploy@web2 locked', 'deploy@web3 locking', 'deploy@web3 locked', 'deploy@web1 reloading']);
    expect(progress.at(-1)).toBe('deploy@web3 done');

    progress = [];
    server.settle = async (host) => {
      throw new LeftoverStateError('a run that died left gunicorn as: neither master has workers', host.name);
    };
    const refused = await failure({ release: 'v3' });
    expect(refused.error).toMatch(/\[deploy@web1\] a run that died left gunicorn as: neither master has workers/);
    expect(server.events.filter((event) => event.includes('v3'))).toEqual([]);
    for (const name of ['web1', 'web2', 'web3']) expect(existsSync(path.join(dirs.get(`deploy@${name}`)!, '.deploy-lock'))).toBe(false);
  });

  it('plan mode inspects and changes nothing', async () => {
    const outcome = await run({ mode: 'plan' });
    expect(server.settled).toEqual([]);
    expect(outcome.status).toBe('planned');
    expect(currentOf('web1')).toBe('releases/v1');
    expect(existsSync(path.join(dirs.get('deploy@web1')!, 'releases/v2'))).toBe(false);
  });
});

describe('deploy locks and the audit log', () => {
  it('fails at once on the lock of a dead run (no heartbeat for minutes), naming mode: unlock', async () => {
    const lock = holdLock('web2', 600);
    const started = Date.now();
    const outcome = await failure({ 'lock-wait': '300' });
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(outcome.error).toMatch(/held by run acme\/shop#41 by alice .*no longer running.*mode: unlock/);
    expect(existsSync(lock)).toBe(true);
  });

  it('a lock taken on the host whose answer was lost is still released, and was recorded for the post step before the command', async () => {
    answerLost = (host, purpose) => host === 'deploy@web2' && purpose === 'take the deploy lock';
    const order: string[] = [];
    const outcome = await failure({}, { progress: (host, phase) => order.push(`${host} ${phase}`) });
    expect(outcome.error).toMatch(/\[deploy@web2\] lost the SSH connection during take the deploy lock/);
    expect(order).toEqual(['deploy@web1 locking', 'deploy@web1 locked', 'deploy@web2 locking']);
    for (const name of ['web1', 'web2', 'web3']) expect(existsSync(path.join(dirs.get(`deploy@${name}`)!, '.deploy-lock')), name).toBe(false);
    // Not this run's line in the log of a host it may never have locked.
    expect(existsSync(path.join(dirs.get('deploy@web2')!, 'deploy.log'))).toBe(false);
  });

  it('a lock held by another run stays, whatever this run recorded before asking for it', async () => {
    const lock = holdLock('web2', 0);
    await failure({ 'lock-wait': '0' });
    expect(readFileSync(path.join(lock, 'owner'), 'utf8')).toMatch(/token=other/);
  });

  it('waits for a live holder within lock-wait, then deploys', async () => {
    const lock = holdLock('web2', 0);
    setTimeout(() => rmSync(lock, { recursive: true, force: true }), 1500);
    const outcome = await run({ 'lock-wait': '30' });
    expect(outcome.status).toBe('deployed');
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v2', 'releases/v2']);
  });

  it('mode unlock removes a dead run\'s lock and says whose it was; leaves a live one unless forced', async () => {
    const dead = holdLock('web1', 600);
    const live = holdLock('web3', 0);
    const refused = await failure({ mode: 'unlock', release: '', source: '' });
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(refused.hosts.map((host) => host.status)).toEqual(['unlocked', 'unlocked', 'failed']);
    expect(refused.hosts[0]?.removedLock).toMatch(/run acme\/shop#41 by alice/);
    expect(refused.hosts[1]?.removedLock).toBeUndefined();
    expect(refused.error).toMatch(/web3: the lock is held by run acme\/shop#41.*still running.*force-unlock/);
    expect(auditOf('web1')).toEqual([expect.stringMatching(/ unlock - -> - strategy=auto result=unlocked /)]);

    const forced = await run({ mode: 'unlock', release: '', source: '', 'force-unlock': 'true' });
    expect(forced.status).toBe('unlocked');
    expect(existsSync(live)).toBe(false);
    expect((await run()).status).toBe('deployed');
  });

  it('appends one line per run to every host\'s deploy.log, failed runs too', async () => {
    await run();
    server.behaviour.set('deploy@web2/v3', 'never-ready');
    await failure({ release: 'v3' });
    for (const name of ['web1', 'web2', 'web3']) {
      const lines = auditOf(name);
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+ run=local:\S+ actor=\S+ deploy v1 -> v2 strategy=auto result=deployed seconds=[\d.]+$/);
      expect(lines[1]).toMatch(/ deploy v2 -> v3 strategy=auto result=rolled-back /);
    }
    expect(existsSync(path.join(dirs.get('deploy@web1')!, '.deploy-lock'))).toBe(false);
  });
});

describe('cancellation (SIGINT/SIGTERM from the runner)', () => {
  /** Aborts the run when the scripted server sees `event` (e.g. 'reload deploy@web2 v2'). */
  function cancelOn(event: string): AbortController {
    const controller = new AbortController();
    const push = server.events.push.bind(server.events);
    server.events.push = (...items: string[]) => {
      const length = push(...items);
      if (items.includes(event)) controller.abort();
      return length;
    };
    return controller;
  }
  const locks = () => ['web1', 'web2', 'web3'].filter((name) => existsSync(path.join(dirs.get(`deploy@${name}`)!, '.deploy-lock')));

  it('before any switch: nothing is switched or reloaded, the locks go, status cancelled', async () => {
    const controller = cancelOn('preflight deploy@web2 v2');
    const outcome = await failure({}, { signal: controller.signal });
    expect(outcome.status).toBe('cancelled');
    expect(outcome.error).toMatch(/^cancelled by the runner; nothing new was started: deploy@web1 serves v1 \(not reached\), deploy@web2 serves v1 \(not reached\), deploy@web3 serves v1 \(not reached\)/);
    expect(server.events.filter((event) => /^preflight/.test(event))).toEqual(['preflight deploy@web1 v2', 'preflight deploy@web2 v2']);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
    expect(locks()).toEqual([]);
  });

  it('during a host\'s gate: that host goes back, hosts done stay done, later hosts are not touched', async () => {
    const controller = cancelOn('reload deploy@web2 v2');
    const outcome = await failure({}, { signal: controller.signal });
    expect(outcome.status).toBe('cancelled');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['deployed', 'rolled-back', 'pending']);
    expect(outcome.error).toMatch(/deploy@web1 serves v2 \(deployed\), deploy@web2 serves v1 \(put back\), deploy@web3 serves v1 \(not reached\)/);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v1', 'releases/v1']);
    expect([...server.serving.values()]).toEqual(['v2', 'v1', 'v1']);
    expect(server.events).toContain('revert deploy@web2 → v1');
    expect(server.events.some((event) => event.includes('web3') && !event.startsWith('preflight'))).toBe(false);
    expect(locks()).toEqual([]);
  });

  it('a rejection no one handled mid-reload stops the run as a cancel does: the host in flight is put back, the locks go, status failed naming it', async () => {
    // vitest's listener would report the stray rejection this story makes on purpose.
    const vitestListeners = process.listeners('unhandledRejection');
    for (const listener of vitestListeners) process.off('unhandledRejection', listener);
    const controller = new AbortController();
    const guard = guardRejections(() => controller.abort());
    const push = server.events.push.bind(server.events);
    server.events.push = (...items: string[]) => {
      if (items.includes('reload deploy@web2 v2')) void Promise.reject(new Error('a stray bug'));
      return push(...items);
    };
    try {
      const outcome = faultedOutcome(await failure({}, { signal: controller.signal }), guard.fault!);
      expect(outcome.status).toBe('failed');
      expect(outcome.error).toMatch(/^an error no code path handled stopped the run \(a stray bug\); .*deploy@web1 serves v2 \(deployed\), deploy@web2 serves v1 \(put back\), deploy@web3 serves v1 \(not reached\)/);
      expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v1', 'releases/v1']);
      expect(server.events).toContain('revert deploy@web2 → v1');
      expect(locks()).toEqual([]);
    } finally {
      guard.dispose();
      for (const listener of vitestListeners) process.on('unhandledRejection', listener);
    }
  });

  it('once a host passed its gate, it is committed, and the next host is not started', async () => {
    const controller = cancelOn('commit deploy@web1 v2');
    const outcome = await failure({}, { signal: controller.signal });
    expect(outcome.status).toBe('cancelled');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['deployed', 'pending', 'pending']);
    expect([...server.serving.values()]).toEqual(['v2', 'v1', 'v1']);
    expect(locks()).toEqual([]);
    expect((await run({ release: 'v3' })).status).toBe('deployed');
  });
});

/** Every path under `dir` with what would show a change: type, mode, owner, size, mtime, ctime. */
function snapshot(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const lines: string[] = [];
  const walk = (relative: string) => {
    const full = path.join(dir, relative);
    const info = lstatSync(full);
    lines.push(`${relative} ${info.mode} ${info.uid} ${info.size} ${info.mtimeMs} ${info.ctimeMs}`);
    if (info.isDirectory()) for (const name of readdirSync(full).sort()) walk(path.join(relative, name));
  };
  walk('.');
  return lines;
}

describe('mode plan is read-only', () => {
  it('changes no file on any host: no lock, no directories, even while another run holds the lock', async () => {
    const lock = path.join(dirs.get('deploy@web2')!, '.deploy-lock');
    mkdirSync(lock);
    writeFileSync(path.join(lock, 'owner'), 'token=other run=acme/shop#41\n');
    const before = [...dirs.values()].map(snapshot);
    const outcome = await run({ mode: 'plan' });
    expect(outcome.status).toBe('planned');
    expect([...dirs.values()].map(snapshot)).toEqual(before);
  });

  it('does not create the app directory of a host that has none', async () => {
    const appDir = dirs.get('deploy@web3')!;
    rmSync(appDir, { recursive: true });
    const outcome = await failure({ mode: 'plan' });
    expect(outcome.error).toMatch(/current does not exist/);
    expect(existsSync(appDir)).toBe(false);
  });
});

describe('pruning after a deploy', () => {
  it('a failed prune is a warning: the deploy stays deployed', async () => {
    for (const name of ['v0a', 'v0b', 'v0c']) mkdirSync(path.join(dirs.get('deploy@web2')!, 'releases', name));
    scripted = (host, purpose) => (host === 'deploy@web2' && purpose === 'prune old releases' ? { stdout: '', stderr: 'rm: cannot remove: Read-only file system', code: 1 } : undefined);
    const outcome = await run({ 'keep-releases': '2' });
    expect(outcome.status).toBe('deployed');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['deployed', 'deployed', 'deployed']);
    expect(warnings).toEqual([expect.stringMatching(/\[deploy@web2\] pruning old releases failed .*Read-only file system/)]);
    expect(currentOf('web2')).toBe('releases/v2');
  });

  it('removes what interrupted runs left in releases/, keeping the releases themselves', async () => {
    const releases = path.join(dirs.get('deploy@web1')!, 'releases');
    writeFileSync(path.join(releases, '.upload-v0-0123456789ab.tar.gz'), 'partial');
    mkdirSync(path.join(releases, '.incoming-v0-0123456789ab'));
    mkdirSync(path.join(releases, '.replaced-v1-ba9876543210'));
    const outcome = await run();
    expect(outcome.status).toBe('deployed');
    expect(readdirSync(releases).sort()).toEqual(['v1', 'v2']);
  });
});

describe('fleet rollout: parallel preparation, canary, batches', () => {
  const fleet = { 'max-parallel': '', 'batch-size': '' };
  const reloads = () => server.events.filter((event) => event.startsWith('reload') || event.startsWith('commit'));

  it('by default deploys the canary alone, then every other host at once', async () => {
    const outcome = await run(fleet);
    expect(outcome.status).toBe('deployed');
    expect(outcome.hosts.map((host) => [host.status, host.batch])).toEqual([
      ['deployed', 0],
      ['deployed', 1],
      ['deployed', 1],
    ]);
    const events = reloads();
    expect(events.slice(0, 2)).toEqual(['reload deploy@web1 v2', 'commit deploy@web1 v2']);
    // web2 and web3 reload together: both started before either committed.
    expect(events.slice(2, 4).sort()).toEqual(['reload deploy@web2 v2', 'reload deploy@web3 v2']);
    for (const name of ['web1', 'web2', 'web3']) expect(currentOf(name)).toBe('releases/v2');
  });

  it('a release that fails the gate on the canary touches nothing beyond it', async () => {
    server.behaviour.set('deploy@web1/v2', 'never-ready');
    const outcome = await failure(fleet);
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(reloads().filter((event) => !event.includes('web1'))).toEqual([]);
    for (const name of ['web1', 'web2', 'web3']) expect(currentOf(name)).toBe('releases/v1');
  });

  it('a failure in a later batch puts every touched host back, in parallel, each reported', async () => {
    server.behaviour.set('deploy@web3/v2', 'never-ready');
    const outcome = await failure({ ...fleet, 'batch-size': '1' });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'rolled-back', 'rolled-back']);
    expect(outcome.error).toMatch(/status 503/);
    for (const name of ['web1', 'web2', 'web3']) expect(currentOf(name)).toBe('releases/v1');
    expect(server.events).toContain('revert deploy@web3 → v1');
  });

  it('max-failed-hosts: a failing host within the limit goes back alone and the rollout goes on', async () => {
    server.behaviour.set('deploy@web2/v2', 'never-ready');
    const outcome = await run({ ...fleet, 'batch-size': '1', 'max-failed-hosts': '1' });
    expect(outcome.status).toBe('deployed');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['deployed', 'rolled-back', 'deployed']);
    expect(outcome.error).toMatch(/deploy@web2: .*503/);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v1', 'releases/v2']);
    expect(warnings.join('\n')).toMatch(/deploy@web2 failed and went back to the previous release alone.*max-failed-hosts: 1, 1 used/);
  });

  it('max-failed-hosts: one failure more than the limit puts every touched host back', async () => {
    server.behaviour.set('deploy@web2/v2', 'never-ready');
    server.behaviour.set('deploy@web3/v2', 'reload-fails');
    const outcome = await failure({ ...fleet, 'batch-size': '1', 'max-failed-hosts': '1' });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'rolled-back', 'rolled-back']);
    for (const name of ['web1', 'web2', 'web3']) expect(currentOf(name)).toBe('releases/v1');
  });

  it('max-failed-hosts as large as the fleet is refused before anything connects', async () => {
    const error = await run({ ...fleet, canary: '0', 'max-failed-hosts': '3' }).catch((caught: unknown) => caught);
    expect(String(error)).toMatch(/Invalid input 'max-failed-hosts': '3' must be less than the number of hosts \(3\)/);
    expect(hosts.size).toBe(0);
  });

  it('a run where no host reached the new release is never deployed, even where max-failed-hosts would let every host go back alone', async () => {
    for (const name of ['web1', 'web2', 'web3']) server.behaviour.set(`deploy@${name}/v2`, 'never-ready');
    const outcome = await failure({ ...fleet, canary: '0', 'batch-size': '1' }, {}, (settings) => (settings.rollout.maxFailedHosts = 3));
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'rolled-back', 'rolled-back']);
    expect(outcome.error).toMatch(/no host reached v2: every host failed and went back/);
    for (const name of ['web1', 'web2', 'web3']) expect(currentOf(name)).toBe('releases/v1');
  });

  it('max-failed-hosts never covers the canary', async () => {
    server.behaviour.set('deploy@web1/v2', 'never-ready');
    const outcome = await failure({ ...fleet, 'max-failed-hosts': '2' });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
  });

  it('canary-wait: a canary that stops answering ready during the wait is rolled back, nothing else touched', async () => {
    server.behaviour.set('deploy@web1/v2', 'degrades');
    const outcome = await failure({ ...fleet, 'canary-wait': '2' });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/canary stopped passing its readiness probe during canary-wait: status 503/);
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(reloads().filter((event) => !event.includes('web1'))).toEqual([]);
    expect(currentOf('web1')).toBe('releases/v1');
  });

  it('a release that cannot be imported on one host stops everything before any switch, with parallel preparation', async () => {
    server.behaviour.set('deploy@web3/v2', 'import-fails');
    const outcome = await failure(fleet);
    expect(outcome.status).toBe('failed');
    expect(outcome.error).toMatch(/ImportError/);
    expect(reloads()).toEqual([]);
    for (const name of ['web1', 'web2', 'web3']) expect(currentOf(name)).toBe('releases/v1');
    // The host it happened on carries the error, for the summary's row and the failed-hosts output.
    expect(outcome.errorHost).toBe('deploy@web3');
    expect(outcome.hosts.map((host) => host.error ?? '')).toEqual(['', '', expect.stringMatching(/ImportError: boom/)]);
  });

  it('mode plan reports each host\'s batch, and the plan itself for the job summary', async () => {
    const outcome = await run({ ...fleet, mode: 'plan', canary: '2' });
    expect(outcome.hosts.map((host) => host.batch)).toEqual([0, 0, 1]);
    expect(outcome.plan).toEqual(['canary (2 hosts): deploy@web1, deploy@web2', 'batch 1 (1 host): deploy@web3']);
  });
});

/** A balancer that records what the story asks of it, its traffic gate failing on the hosts named. */
class RecordingBalancer implements Balancer {
  readonly calls: string[] = [];
  constructor(
    private readonly events: string[],
    private readonly failTrafficOn: string[] = [],
  ) {}
  async open(targets: readonly HostTarget[]): Promise<void> {
    this.calls.push(`open ${targets.map((target) => target.label).join(',')}`);
  }
  /** Each around() as `host` or `host put-back`. */
  readonly arounds: string[] = [];
  async around<T>(host: string, work: () => Promise<T>, options?: AroundOptions): Promise<T> {
    this.arounds.push(`${host}${options?.putBack ? ' put-back' : ''}`);
    this.events.push(`drain ${host}`);
    const result = await work();
    this.events.push(`ready ${host}`);
    return result;
  }
  async trafficCheck(hosts: readonly string[]): Promise<void> {
    this.events.push(`traffic ${hosts.join(',')}`);
    if (hosts.some((host) => this.failTrafficOn.includes(host))) throw new Error(`traffic gate failed on ${hosts.join(',')}`);
  }
  async close(reports: HostReport[]): Promise<void> {
    this.calls.push(`close ${reports.length}`);
  }
  async restoreNow(): Promise<void> {}
}

describe('deploy story with a load balancer', () => {
  /** A balancer whose traffic gate fails on `host`, and the runner's SIGINT arriving at that moment: what follows runs on a cancelled run. */
  const cancelledAsTrafficFails = (host: string) => {
    const controller = new AbortController();
    const balancer = new RecordingBalancer(server.events, [host]);
    const check = balancer.trafficCheck.bind(balancer);
    balancer.trafficCheck = (targets) =>
      check(targets).catch((error: unknown) => {
        controller.abort();
        throw error;
      });
    return { balancer, controller };
  };

  it('opens the balancer before any change; each host reloads inside around() and passes the traffic check before its commit', async () => {
    const balancer = new RecordingBalancer(server.events);
    const outcome = await run({}, { balancer });
    expect(outcome.status).toBe('deployed');
    expect(balancer.calls).toEqual(['open deploy@web1,deploy@web2,deploy@web3', 'close 3']);
    expect(server.events.slice(3, 8)).toEqual(['drain deploy@web1', 'reload deploy@web1 v2', 'ready deploy@web1', 'traffic deploy@web1', 'commit deploy@web1 v2']);
  });

  it('a failed traffic check rolls the host back (reverting its reload, inside around()) and touches no other host', async () => {
    const balancer = new RecordingBalancer(server.events, ['deploy@web1']);
    const outcome = await failure({}, { balancer });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/traffic gate failed on deploy@web1/);
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(server.events.slice(3)).toEqual(['drain deploy@web1', 'reload deploy@web1 v2', 'ready deploy@web1', 'traffic deploy@web1', 'drain deploy@web1', 'revert deploy@web1 → v1', 'ready deploy@web1']);
    expect([...server.serving.values()]).toEqual(['v1', 'v1', 'v1']);
    expect(balancer.calls.at(-1)).toBe('close 3');
  });

  it('a cancel during a rollback: the put-back goes through the balancer as one (no cancellation taken) and runs to its end; the gate failure that came first is the outcome', async () => {
    const { balancer, controller } = cancelledAsTrafficFails('deploy@web1');
    const outcome = await failure({}, { balancer, signal: controller.signal });
    expect(balancer.arounds).toEqual(['deploy@web1', 'deploy@web1 put-back']);
    // No host is left on v2: a rollback caused by the gate, not a cancel that stopped a rollout halfway.
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/traffic gate failed on deploy@web1/);
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'pending', 'pending']);
    expect(server.events).toContain('revert deploy@web1 → v1');
    expect([...server.serving.values()]).toEqual(['v1', 'v1', 'v1']);
  });

  it('a cancel as a later batch fails its gate: the hosts already done go back too, as they would without the cancel', async () => {
    const { balancer, controller } = cancelledAsTrafficFails('deploy@web2');
    const outcome = await failure({}, { balancer, signal: controller.signal });
    // web1 (the canary) passed, then web2 failed its own gate: the release is bad, cancel or not.
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/traffic gate failed on deploy@web2/);
    expect(outcome.hosts[0]?.status).toBe('rolled-back');
    expect([...server.serving.values()]).toEqual(['v1', 'v1', 'v1']);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v1', 'releases/v1', 'releases/v1']);
  });

  it('a drain wait cancelled before the work: the host was never switched, so nothing reloads it', async () => {
    const controller = new AbortController();
    const balancer = new RecordingBalancer(server.events);
    const around = balancer.around.bind(balancer);
    balancer.around = async <T>(host: string, work: () => Promise<T>, options?: AroundOptions): Promise<T> => {
      if (host !== 'deploy@web2' || options?.putBack) return around(host, work, options);
      // As HaproxyBalancer's drain wait does when the runner cancels: stop before the work.
      controller.abort();
      throw new CancelledError('cancelled: did not wait for web2 to drain', host);
    };
    const outcome = await failure({}, { balancer, signal: controller.signal });
    expect(outcome.status).toBe('cancelled');
    expect(outcome.hosts.map((host) => host.status)).toEqual(['deployed', 'pending', 'pending']);
    expect(server.events.filter((event) => event.includes('web2') && !event.startsWith('preflight'))).toEqual([]);
    expect(['web1', 'web2', 'web3'].map(currentOf)).toEqual(['releases/v2', 'releases/v1', 'releases/v1']);
  });

  it('a balancer failing before a host\'s switch fails the run: that host is not reloaded, the hosts before it go back', async () => {
    const balancer = new RecordingBalancer(server.events);
    const around = balancer.around.bind(balancer);
    balancer.around = async <T>(host: string, work: () => Promise<T>, options?: AroundOptions): Promise<T> =>
      host === 'deploy@web2' && !options?.putBack ? Promise.reject(new Error('HAProxy: connection refused')) : around(host, work, options);
    const outcome = await failure({}, { balancer });
    expect(outcome.status).toBe('rolled-back');
    expect(outcome.error).toMatch(/HAProxy: connection refused/);
    expect(outcome.hosts.map((host) => host.status)).toEqual(['rolled-back', 'failed', 'pending']);
    expect(server.events.filter((event) => event.includes('web2') && !event.startsWith('preflight'))).toEqual([]);
    expect([...server.serving.values()]).toEqual(['v1', 'v1', 'v1']);
  });

  it('a balancer that refuses the plan stops the run before any lock or change', async () => {
    const balancer = new RecordingBalancer(server.events);
    balancer.open = async () => Promise.reject(new Error('draining app/web1 would leave the backend with no server UP'));
    await expect(run({}, { balancer })).rejects.toThrow(/no server UP/);
    expect(server.events).toEqual([]);
    expect(existsSync(path.join(dirs.get('deploy@web1')!, '.deploy-lock'))).toBe(false);
    expect(balancer.calls).toEqual(['close 0']);
  });
});
