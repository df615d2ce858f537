import * as path from 'node:path';
import { InputError } from '../errors.js';
import { parseKnownHosts } from '../remote/known-hosts.js';
import { Inputs } from './input-names.js';
import { withAliases } from './input-aliases.js';
import { shouldDrain } from '../balancer/drain-policy.js';
import { parseBatchSize, type BatchSize } from '../rollout/rollout-plan.js';
import type { BalancerSettings, ExpectVersion, GunicornStrategy, HostTarget, IfCurrent, JumpHostSettings, Mode, RolloutSettings, ServerKind, Settings, UwsgiStrategy } from './settings.js';

/** Reads one raw input by name ('' when unset). core.getInput in the action, a map in tests. */
export type InputReader = (name: string) => string;

/** The run's environment facts used for defaults (GITHUB_REF, GITHUB_SHA, SSH_AUTH_SOCK, GITHUB_WORKSPACE). */
export type RunEnvironment = Readonly<Record<string, string | undefined>>;

export const STRATEGIES: readonly GunicornStrategy[] = ['auto', 'usr2', 'rolling', 'hup'];
/** Each server's strategies; the first is its default. */
export const SERVER_STRATEGIES: Readonly<Record<ServerKind, readonly (GunicornStrategy | UwsgiStrategy)[]>> = {
  gunicorn: STRATEGIES,
  uwsgi: ['chain', 'reload'],
};
const RELEASE_NAME = /^[A-Za-z0-9._-]+$/;
const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
// `_` is not valid in DNS host names, but in /etc/hosts, ssh_config aliases and container names it is common.
const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
const SAFE_PATH = /^[A-Za-z0-9._/@+-]+$/;
/** HAProxy proxy and server names: letters, digits, '-', '_', '.' and ':'. */
const HAPROXY_NAME = /^[A-Za-z0-9_.:-]+$/;
/** The one vocabulary of the tri-state inputs (expect-version, lb-drain). */
const TRI_STATE = ['auto', 'always', 'never'] as const;

/** Every mode; `migrate` runs only the gated migration step of a deploy (no switch, no reload). */
export const MODES: readonly Mode[] = ['deploy', 'rollback', 'migrate', 'plan', 'unlock'];

/**
 * Turns raw inputs into Settings, or throws an InputError naming the input and the value's
 * problem. Nothing here touches the network or a host. Deprecated input names and values are
 * read through the alias table (input-aliases.ts), each use reported once through `warn`.
 */
export function parseSettings(read: InputReader, env: RunEnvironment, warn: (message: string) => void = () => undefined): Settings {
  const aliased = withAliases(read, warn);
  const get = (name: string): string => aliased(name).trim();
  const appDir = absolutePath(Inputs.AppDir, get(Inputs.AppDir) || '/srv/app');
  // No guessed default: the SSH user must be the one that runs the app server (or root).
  const defaultUser = get(Inputs.User) || undefined;
  const defaultPort = integer(Inputs.Port, get(Inputs.Port) || '22', 1, 65535);
  if (defaultUser !== undefined && !USER_NAME.test(defaultUser)) throw new InputError(Inputs.User, `'${defaultUser}' is not a valid user name.`);

  const skipHostKeys = boolean(Inputs.InsecureSkipHostKeyCheck, get(Inputs.InsecureSkipHostKeyCheck), false);
  const knownHosts = read(Inputs.KnownHosts).trim();
  if (!knownHosts && !skipHostKeys) {
    throw new InputError(
      Inputs.KnownHosts,
      'known_hosts lines for every host are required (get them with `ssh-keyscan -p PORT HOST` from a trusted network). ' +
        `To connect without verifying host keys, set '${Inputs.InsecureSkipHostKeyCheck}: true'.`,
    );
  }
  if (!skipHostKeys) parseKnownHosts(knownHosts); // a malformed line is an error naming its line, before connecting
  const privateKey = normaliseKey(read(Inputs.SshKey));
  const agent = env.SSH_AUTH_SOCK || undefined;
  if (!privateKey && !agent) {
    throw new InputError(Inputs.SshKey, 'a private key is required when no ssh-agent is running (SSH_AUTH_SOCK is unset).');
  }
  if (privateKey) checkPrivateKey(Inputs.SshKey, privateKey);

  const mode = oneOf<Mode>(Inputs.Mode, get(Inputs.Mode) || 'deploy', MODES);
  const server = oneOf<ServerKind>(Inputs.Server, get(Inputs.Server) || 'gunicorn', ['gunicorn', 'uwsgi']);
  const strategies = SERVER_STRATEGIES[server];
  const strategy = oneOf(Inputs.Strategy, get(Inputs.Strategy) || (strategies[0] ?? ''), strategies, ` (for server: ${server})`);
  const healthTimeout = integer(Inputs.HealthTimeout, get(Inputs.HealthTimeout) || '120', 1, 3600);

  if (mode === 'migrate' && !get(Inputs.MigrateCommand)) throw new InputError(Inputs.MigrateCommand, 'is required with mode: migrate (the step it runs).');
  const hosts = parseHosts(read(Inputs.Hosts), defaultUser, defaultPort);
  const balancer = balancerSettings(get, defaultUser, hosts);
  const rollout = rolloutSettings(get, strategy, balancer !== undefined && shouldDrain(balancer.drain, server, strategy), hosts.length);
  if (balancer?.canaryWeightPercent !== undefined && rollout.canary === 0) {
    throw new InputError(Inputs.LbCanaryWeight, `'${get(Inputs.LbCanaryWeight)}' needs a canary: set ${Inputs.Canary} to 1 or more, or leave ${Inputs.LbCanaryWeight} empty.`);
  }
  const credentials = { privateKey, passphrase: read(Inputs.SshKeyPassphrase) || undefined, agent: privateKey ? undefined : agent };
  const become = get(Inputs.Become) || undefined;
  if (become !== undefined && !USER_NAME.test(become)) throw new InputError(Inputs.Become, `'${become}' is not a valid user name.`);
  return {
    hosts,
    become,
    ssh: {
      ...credentials,
      knownHosts: skipHostKeys ? undefined : knownHosts,
      jump: jumpHost(get(Inputs.JumpHost), normaliseKey(read(Inputs.JumpSshKey)), defaultUser, credentials),
      connectTimeoutSeconds: integer(Inputs.ConnectTimeout, get(Inputs.ConnectTimeout) || '20', 1, 600),
      commandTimeoutSeconds: integer(Inputs.CommandTimeout, get(Inputs.CommandTimeout) || '600', 1, 86400),
    },
    appDir,
    source: sourceDir(get(Inputs.Source), env, mode),
    release: releaseFor(mode, get(Inputs.Release), env),
    keepReleases: integer(Inputs.KeepReleases, get(Inputs.KeepReleases) || '5', 2, 1000),
    sharedPaths: sharedPaths(read(Inputs.SharedPaths)),
    installCommand: get(Inputs.InstallCommand) || undefined,
    migration: {
      command: get(Inputs.MigrateCommand) || null,
      host: migrateHost(get(Inputs.MigrateHost), hosts),
      lint: oneOf(Inputs.MigrationLint, get(Inputs.MigrationLint) || 'on', ['on', 'warn', 'off'] as const),
      lockTimeoutSeconds: integer(Inputs.MigrationLockTimeout, get(Inputs.MigrationLockTimeout) || '5', 0, 3600),
    },
    server,
    strategy,
    pidfile: absolutePath(Inputs.Pidfile, get(Inputs.Pidfile) || `${appDir}/run/${server}.pid`),
    service: serviceName(get(Inputs.Service), server),
    serverLog: get(Inputs.ServerLog) ? absolutePath(Inputs.ServerLog, get(Inputs.ServerLog)) : undefined,
    wsgiApp: wsgiApp(get(Inputs.WsgiApp)),
    python: get(Inputs.Python) ? absolutePath(Inputs.Python, get(Inputs.Python)) : undefined,
    reloadTimeoutSeconds: integer(Inputs.ReloadTimeout, get(Inputs.ReloadTimeout) || String(healthTimeout), 1, 3600),
    health: {
      ...healthUrl(get(Inputs.HealthUrl) || 'http://127.0.0.1:8000/health/ready'),
      host: healthHost(get(Inputs.HealthHost)),
      timeoutSeconds: healthTimeout,
      intervalSeconds: number(Inputs.HealthInterval, get(Inputs.HealthInterval) || '0.1', 0.1, 60),
      successes: integer(Inputs.HealthSuccesses, get(Inputs.HealthSuccesses) || '3', 1, 100),
      expectVersion: expectVersion(get(Inputs.ExpectVersion) || 'auto'),
    },
    rollback: oneOf(Inputs.Rollback, get(Inputs.Rollback) || 'auto', ['auto', 'never'] as const),
    mode,
    ifCurrent: oneOf<IfCurrent>(Inputs.IfCurrent, get(Inputs.IfCurrent) || 'skip', ['skip', 'redeploy', 'fail']),
    lockWaitSeconds: integer(Inputs.LockWait, get(Inputs.LockWait) || '300', 0, 86400),
    forceUnlock: boolean(Inputs.ForceUnlock, get(Inputs.ForceUnlock), false),
    rollout,
    balancer,
  };
}

/**
 * Strategies that keep a host at full capacity through its reload (the old generation serves
 * until the new one passed its boot) move together after the canary by default; those that
 * stall the host's requests while it boots, and hosts the balancer drains around their reload
 * (out of rotation: capacity the rest of the fleet must carry), go one host at a time.
 */
const STALLING_STRATEGIES: readonly string[] = ['hup', 'reload'];

function rolloutSettings(get: (name: string) => string, strategy: string, drained: boolean, hostCount: number): RolloutSettings {
  const text = get(Inputs.BatchSize);
  let batchSize: BatchSize | undefined = STALLING_STRATEGIES.includes(strategy) || drained ? { count: 1 } : { percent: 100 };
  if (text) {
    batchSize = parseBatchSize(text);
    if (!batchSize) throw new InputError(Inputs.BatchSize, `'${text}' must be a number of hosts (1 or more) or a percentage of the fleet such as 25%.`);
  }
  const maxFailedHosts = integer(Inputs.MaxFailedHosts, get(Inputs.MaxFailedHosts) || '0', 0, 1000);
  if (maxFailedHosts > 0 && maxFailedHosts >= hostCount) {
    throw new InputError(Inputs.MaxFailedHosts, `'${maxFailedHosts}' must be less than the number of hosts (${hostCount}): with every host allowed to fail, a release that fails everywhere would go on as if deployed.`);
  }
  return {
    maxParallel: integer(Inputs.MaxParallel, get(Inputs.MaxParallel) || '10', 1, 1000),
    canary: integer(Inputs.Canary, get(Inputs.Canary) || '1', 0, 1000),
    canaryWaitSeconds: integer(Inputs.CanaryWait, get(Inputs.CanaryWait) || '0', 0, 86400),
    batchSize,
    batchWaitSeconds: integer(Inputs.BatchWait, get(Inputs.BatchWait) || '0', 0, 86400),
    maxFailedHosts,
  };
}

/** lb and its companions; undefined when lb is empty. Each missing piece is named before anything connects. */
function balancerSettings(get: (name: string) => string, defaultUser: string | undefined, hosts: HostTarget[]): BalancerSettings | undefined {
  const kind = get(Inputs.Lb);
  if (!kind) return undefined;
  if (kind !== 'haproxy') throw new InputError(Inputs.Lb, `'${kind}' must be haproxy or empty.`);
  const hostText = get(Inputs.LbHost);
  if (!hostText) throw new InputError(Inputs.LbHost, `the SSH host that runs HAProxy is required with ${Inputs.Lb}: haproxy.`);
  if (/[,\n]/.test(hostText)) throw new InputError(Inputs.LbHost, `'${hostText}' must be one host, [user@]host[:port].`);
  const host = parseHost(hostText, defaultUser, 22, Inputs.LbHost);
  const backend = get(Inputs.LbBackend);
  if (!backend) throw new InputError(Inputs.LbBackend, `the HAProxy backend that holds the hosts is required with ${Inputs.Lb}: haproxy.`);
  if (!HAPROXY_NAME.test(backend)) throw new InputError(Inputs.LbBackend, `'${backend}' is not an HAProxy backend name (letters, digits, '-', '_', '.', ':').`);
  const windowSeconds = number(Inputs.LbTrafficGateWindow, get(Inputs.LbTrafficGateWindow) || '10', 0, 3600);
  return {
    kind,
    host,
    socket: absolutePath(Inputs.LbSocket, get(Inputs.LbSocket) || '/run/haproxy/admin.sock'),
    backend,
    servers: lbServers(get(Inputs.LbServers), hosts),
    drain: oneOf(Inputs.LbDrain, get(Inputs.LbDrain) || 'auto', TRI_STATE),
    drainTimeoutSeconds: integer(Inputs.LbDrainTimeout, get(Inputs.LbDrainTimeout) || '30', 0, 3600),
    windowSeconds,
    max5xxRate: number(Inputs.LbTrafficGateMax5xxRate, get(Inputs.LbTrafficGateMax5xxRate) || '0.02', 0, 1),
    latencyFactor: number(Inputs.LbTrafficGateLatencyFactor, get(Inputs.LbTrafficGateLatencyFactor) || '3', 1, 1000),
    canaryWeightPercent: canaryWeight(get(Inputs.LbCanaryWeight), windowSeconds),
  };
}

/**
 * lb-canary-weight: `10%` (or `10`) of the server's configured weight while the traffic gate
 * watches the canary. Empty or 100%: full weight. A lowered weight with the gate off would only
 * slow the rollout, so it needs a traffic window.
 */
function canaryWeight(text: string, windowSeconds: number): number | undefined {
  if (!text) return undefined;
  const match = /^(\d+)\s*%?$/.exec(text.trim());
  const percent = match ? Number(match[1]) : Number.NaN;
  if (!(percent >= 1 && percent <= 100)) throw new InputError(Inputs.LbCanaryWeight, `'${text}' must be a percentage of the server's weight from 1% to 100%, such as 10%.`);
  if (percent === 100) return undefined;
  if (windowSeconds === 0) throw new InputError(Inputs.LbCanaryWeight, `'${text}' needs the traffic gate, which watches the canary at that weight: set ${Inputs.LbTrafficGateWindow} above 0.`);
  return percent;
}

/** `host=server` pairs; each host must be one of `hosts` (label, address, address:port or user@address). */
function lbServers(text: string, hosts: HostTarget[]): Map<string, string> | undefined {
  const pairs = text.split(/[,\n]/).map((item) => item.trim()).filter(Boolean);
  if (pairs.length === 0) return undefined;
  const servers = new Map<string, string>();
  for (const pair of pairs) {
    const match = /^([^=\s]+)=([^=\s]+)$/.exec(pair);
    if (!match) throw new InputError(Inputs.LbServers, `'${pair}' must be host=server.`);
    const [, key = '', server = ''] = match;
    if (!HAPROXY_NAME.test(server)) throw new InputError(Inputs.LbServers, `'${server}' in '${pair}' is not an HAProxy server name.`);
    const host = hosts.find((candidate) => [candidate.label, candidate.host, `${candidate.host}:${candidate.port}`, `${candidate.user}@${candidate.host}`].includes(key));
    if (!host) throw new InputError(Inputs.LbServers, `'${key}' is not one of the hosts (${hosts.map((candidate) => candidate.label).join(', ')}).`);
    servers.set(host.label, server);
  }
  for (const host of hosts) {
    if (!servers.has(host.label)) throw new InputError(Inputs.LbServers, `${host.label} has no server; name every host or leave ${Inputs.LbServers} empty to match by address.`);
  }
  return servers;
}

/** Parses `[user@]host[:port]` items separated by commas or newlines. IPv6 literals go in brackets. */
export function parseHosts(text: string, defaultUser: string | undefined, defaultPort: number): HostTarget[] {
  const items = text
    .split(/[,\n]/)
    .map((item) => item.trim())
    .filter((item) => item && !item.startsWith('#'));
  if (items.length === 0) throw new InputError(Inputs.Hosts, 'at least one host is required.');
  const hosts = items.map((item) => parseHost(item, defaultUser, defaultPort));
  const seen = new Set<string>();
  for (const host of hosts) {
    if (seen.has(host.label)) throw new InputError(Inputs.Hosts, `'${host.label}' is listed twice.`);
    seen.add(host.label);
  }
  return hosts;
}

function parseHost(item: string, defaultUser: string | undefined, defaultPort: number, input: string = Inputs.Hosts): HostTarget {
  const match = /^(?:([^@\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^:@\s[\]]+)(?::(\d+))?$/.exec(item);
  if (!match) throw new InputError(input, `'${item}' is not of the form [user@]host[:port].`);
  const [, userPart, hostPart = '', portPart] = match;
  const user = userPart ?? defaultUser;
  if (user === undefined) {
    throw new InputError(
      Inputs.User,
      `no SSH user for '${item}' (${input}): set '${Inputs.User}' to the user that runs the app server (or root; there is no default), or write the host as user@${item}.`,
    );
  }
  if (!USER_NAME.test(user)) throw new InputError(input, `'${user}' in '${item}' is not a valid user name.`);
  const bracketed = hostPart.startsWith('[');
  const host = bracketed ? hostPart.slice(1, -1) : hostPart;
  if (!bracketed && !HOST_NAME.test(host)) throw new InputError(input, `'${host}' in '${item}' is not a valid host name or address.`);
  const port = portPart ? integer(input, portPart, 1, 65535) : defaultPort;
  const shown = bracketed ? `[${host}]` : host;
  return { user, host, port, label: port === 22 ? `${user}@${shown}` : `${user}@${shown}:${port}` };
}

/**
 * jump-host is one `[user@]host[:port]`, read like a host. Its port defaults to 22, not to
 * `port`: that input is the hosts' port, and a bastion's sshd rarely shares a private one.
 * Without jump-ssh-key the bastion gets the hosts' key (or agent), as `ssh -J` offers it.
 */
export function jumpHost(value: string, key: string | undefined, defaultUser: string | undefined, hostCredentials: Omit<JumpHostSettings, 'target'>): JumpHostSettings | undefined {
  if (!value) {
    if (key) throw new InputError(Inputs.JumpSshKey, `is set but ${Inputs.JumpHost} is empty: name the bastion it is for, or remove the key.`);
    return undefined;
  }
  if (/[,\n]/.test(value)) throw new InputError(Inputs.JumpHost, `'${value}' names more than one host; one bastion is supported.`);
  const target = parseHost(value, defaultUser, 22, Inputs.JumpHost);
  if (!key) return { target, ...hostCredentials };
  checkPrivateKey(Inputs.JumpSshKey, key);
  return { target, privateKey: key };
}

/** migrate-host names one of `hosts` (as written there, or by host name alone); stored as its label. */
function migrateHost(value: string, hosts: HostTarget[]): string | null {
  if (!value) return null;
  const match = hosts.find((host) => [host.label, host.host, `${host.host}:${host.port}`, `${host.user}@${host.host}`].includes(value));
  if (!match) throw new InputError(Inputs.MigrateHost, `'${value}' is not one of the hosts (${hosts.map((host) => host.label).join(', ')}).`);
  return match.label;
}

/**
 * `refs/tags/v1.2.3` → `v1.2.3`; otherwise the short commit; an explicit value wins and must
 * already be valid. A tag may hold characters a release name cannot (`release/1.2`,
 * `v1.2.3+build.4`): each run of them becomes `-`.
 */
export function releaseName(explicit: string, env: RunEnvironment): string {
  let name = explicit;
  if (!name) {
    const ref = env.GITHUB_REF ?? '';
    if (ref.startsWith('refs/tags/')) name = ref.slice('refs/tags/'.length).replace(/[^A-Za-z0-9._-]+/g, '-');
    else if (env.GITHUB_SHA) name = env.GITHUB_SHA.slice(0, 7);
    else throw new InputError(Inputs.Release, 'no release name given and none can be derived (no tag in GITHUB_REF, no GITHUB_SHA).');
  }
  if (!RELEASE_NAME.test(name) || name === '.' || name.includes('..') || name.length > 128) {
    throw new InputError(Inputs.Release, `'${name}' may only contain letters, digits, '.', '_' and '-' (no '..', at most 128 characters).`);
  }
  return name;
}

/** DESIGN: empty means "no upload" (action.yml's default is `.`, so an unset input uploads the workspace). */
function sourceDir(value: string, env: RunEnvironment, mode: Mode): string | undefined {
  if (mode === 'rollback' || mode === 'unlock' || value === '' || value === '-') return undefined;
  return path.resolve(env.GITHUB_WORKSPACE ?? process.cwd(), value);
}

function sharedPaths(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((item) => item.trim().replace(/\/{2,}$/, '/'))
    .filter(Boolean)
    .map((item) => {
      if (item.startsWith('/') || item === '/' || item.split('/').includes('..') || !SAFE_PATH.test(item)) {
        throw new InputError(Inputs.SharedPaths, `'${item}' must be a relative path inside the release, without '..'.`);
      }
      return item;
    });
}

function absolutePath(input: string, value: string): string {
  const clean = value.replace(/\/+$/, '') || '/';
  if (!clean.startsWith('/') || clean === '/' || clean.split('/').includes('..') || !SAFE_PATH.test(clean)) {
    throw new InputError(input, `'${value}' must be an absolute path other than '/', without '..', of letters, digits and ._/@+-.`);
  }
  return clean;
}

/** systemd unit names: letters, digits and `:_.@-` (an instance's `@` included). */
const UNIT_NAME = /^[A-Za-z0-9:_.@-]+$/;

/** The service input as a full unit name (`gunicorn` → `gunicorn.service`), or undefined. */
function serviceName(value: string, server: ServerKind): string | undefined {
  if (!value) return undefined;
  if (server !== 'gunicorn') throw new InputError(Inputs.Service, 'only a gunicorn master is found by its service (uWSGI is found by its pidfile).');
  if (!UNIT_NAME.test(value) || value.startsWith('-')) throw new InputError(Inputs.Service, `'${value}' is not a systemd unit name (letters, digits and :_.@-).`);
  const suffix = /\.([a-z]+)$/.exec(value)?.[1];
  if (suffix === 'socket') throw new InputError(Inputs.Service, `'${value}' is a socket unit: name the service it starts (e.g. '${value.replace(/\.socket$/, '.service')}').`);
  if (suffix && suffix !== 'service') throw new InputError(Inputs.Service, `'${value}' is a .${suffix} unit: name gunicorn's .service unit.`);
  return suffix ? value : `${value}.service`;
}

function wsgiApp(value: string): string | undefined {
  if (!value) return undefined;
  if (!/^[A-Za-z_][\w.]*(:[\w.]+(\(\))?)?$/.test(value)) throw new InputError(Inputs.WsgiApp, `'${value}' must look like module:callable.`);
  return value;
}

const UNIX_URL_EXAMPLE = 'http+unix://%2Frun%2Fgunicorn.sock/health/ready';

/**
 * health-url: http or https, or http+unix with the socket's path percent-encoded where the host
 * goes (the requests-unixsocket convention), e.g. UNIX_URL_EXAMPLE for gunicorn bound to
 * `unix:/run/gunicorn.sock`.
 */
function healthUrl(value: string): { url: string; socket?: string } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InputError(Inputs.HealthUrl, `'${value}' is not a URL.`);
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') return { url: url.toString() };
  if (url.protocol !== 'http+unix:') {
    throw new InputError(Inputs.HealthUrl, `'${value}' must use http, https, or http+unix for a unix socket (${UNIX_URL_EXAMPLE}).`);
  }
  let socket: string;
  try {
    socket = decodeURIComponent(url.hostname);
  } catch {
    socket = '';
  }
  if (!socket.startsWith('/') || url.port) {
    throw new InputError(Inputs.HealthUrl, `'${value}': with http+unix the socket's absolute path goes percent-encoded where the host would be, e.g. ${UNIX_URL_EXAMPLE}.`);
  }
  return { url: url.toString(), socket };
}

/** health-host: the Host header of the probe, a name with an optional port (no scheme, no path). */
function healthHost(value: string): string | undefined {
  if (!value) return undefined;
  if (!/^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/.test(value)) {
    throw new InputError(Inputs.HealthHost, `'${value}' must be a host name the app serves, optionally with :port (the Host header of the readiness probe), e.g. www.example.com.`);
  }
  return value;
}

function expectVersion(value: string): ExpectVersion {
  return oneOf(Inputs.ExpectVersion, value.toLowerCase(), TRI_STATE);
}

/**
 * The release a run is about. deploy, migrate and plan: the input, else derived from the tag or
 * commit. rollback: only a name given here (else each host's `previous`). unlock: none.
 */
function releaseFor(mode: Mode, explicit: string, env: RunEnvironment): string {
  if (mode === 'unlock') return '';
  if (mode === 'rollback') return explicit ? releaseName(explicit, {}) : '';
  return releaseName(explicit, env);
}

function oneOf<T extends string>(input: string, value: string, allowed: readonly T[], context = ''): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(input, `'${value}' must be one of: ${allowed.join(', ')}${context}.`);
}

function boolean(input: string, value: string, fallback: boolean): boolean {
  if (value === '') return fallback;
  if (/^(true|yes|on|1)$/i.test(value)) return true;
  if (/^(false|no|off|0)$/i.test(value)) return false;
  throw new InputError(input, `'${value}' must be true or false.`);
}

function integer(input: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new InputError(input, `'${value}' must be a whole number.`);
  return number(input, value, min, max);
}

function number(input: string, value: string, min: number, max: number): number {
  const parsed = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
    throw new InputError(input, `'${value}' must be a number from ${min} to ${max}.`);
  }
  return parsed;
}

function checkPrivateKey(input: string, key: string): void {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new InputError(input, 'expected the text of a private key (-----BEGIN ... PRIVATE KEY-----), not a path or a public key.');
  }
}

/** Keys pasted into secrets often lose their final newline or carry Windows line ends; ssh2 needs neither quirk. */
function normaliseKey(text: string): string | undefined {
  const key = text.replace(/\r\n/g, '\n').trim();
  return key ? `${key}\n` : undefined;
}
