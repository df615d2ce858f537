import { describe, expect, it } from 'vitest';
import { parseHosts, parseSettings, releaseName } from '../../src/config/input-helper.js';

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----';
/** A well-formed ssh-ed25519 public key (the type string and 32 key bytes). */
const HOST_KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

function settingsFrom(inputs: Record<string, string>, env: Record<string, string> = { GITHUB_REF: 'refs/tags/v1.2.3' }) {
  const all: Record<string, string> = { hosts: 'web1', user: 'deploy', 'ssh-key': KEY, 'known-hosts': `web1 ssh-ed25519 ${HOST_KEY}`, ...inputs };
  return parseSettings((name) => all[name] ?? '', env);
}

describe('parseSettings', () => {
  it('applies the documented defaults', () => {
    const settings = settingsFrom({});
    expect(settings).toMatchObject({
      appDir: '/srv/app',
      release: 'v1.2.3',
      keepReleases: 5,
      server: 'gunicorn',
      strategy: 'auto',
      pidfile: '/srv/app/run/gunicorn.pid',
      service: undefined,
      rollback: 'auto',
      mode: 'deploy',
      lockWaitSeconds: 300,
      forceUnlock: false,
      health: { url: 'http://127.0.0.1:8000/health/ready', timeoutSeconds: 120, intervalSeconds: 0.1, successes: 3, expectVersion: 'auto' },
    });
    expect(settings.hosts).toEqual([{ user: 'deploy', host: 'web1', port: 22, label: 'deploy@web1' }]);
    expect(settings.ssh.privateKey).toBe(`${KEY}\n`);
  });

  it('requires user unless every host names its own: the SSH user is never guessed', () => {
    expect(() => settingsFrom({ user: '' })).toThrow(
      "Invalid input 'user': no SSH user for 'web1' (hosts): set 'user' to the user that runs the app server (or root; there is no default), or write the host as user@web1.",
    );
    expect(settingsFrom({ user: '', hosts: 'app@web1' }).hosts).toEqual([{ user: 'app', host: 'web1', port: 22, label: 'app@web1' }]);
    expect(() => settingsFrom({ user: '', hosts: 'app@web1', 'jump-host': 'bastion' })).toThrow(/Invalid input 'user': no SSH user for 'bastion' \(jump-host\)/);
  });

  it('mode rollback takes an explicit release name only; mode migrate needs migrate-command', () => {
    expect(settingsFrom({ mode: 'rollback' }).release).toBe('');
    expect(settingsFrom({ mode: 'rollback', release: 'v1.0.0' }).release).toBe('v1.0.0');
    expect(() => settingsFrom({ mode: 'rollback', release: '../v1' })).toThrow(/Invalid input 'release'/);
    expect(() => settingsFrom({ mode: 'migrate' })).toThrow("Invalid input 'migrate-command': is required with mode: migrate (the step it runs).");
    expect(settingsFrom({ mode: 'migrate', 'migrate-command': 'flask db upgrade' })).toMatchObject({ mode: 'migrate', release: 'v1.2.3' });
  });

  it('if-current is skip, redeploy or fail (default skip)', () => {
    expect(settingsFrom({}).ifCurrent).toBe('skip');
    expect(settingsFrom({ 'if-current': 'redeploy' }).ifCurrent).toBe('redeploy');
    expect(() => settingsFrom({ 'if-current': 'again' })).toThrow("Invalid input 'if-current': 'again' must be one of: skip, redeploy, fail.");
  });

  it('migration-lint is on, warn or off (default on)', () => {
    expect(settingsFrom({}).migration.lint).toBe('on');
    expect(settingsFrom({ 'migration-lint': 'warn' }).migration.lint).toBe('warn');
    expect(() => settingsFrom({ 'migration-lint': 'strict' })).toThrow("Invalid input 'migration-lint': 'strict' must be one of: on, warn, off.");
  });

  it('takes the python input as an absolute path; unset, the interpreter is found on the host', () => {
    expect(settingsFrom({ python: '/srv/app/venv/bin/python3/' }).python).toBe('/srv/app/venv/bin/python3');
    expect(settingsFrom({}).python).toBeUndefined();
  });

  it('accepts server: uwsgi with its own strategies, default chain, and its own pidfile default', () => {
    expect(settingsFrom({ server: 'uwsgi' })).toMatchObject({ server: 'uwsgi', strategy: 'chain', pidfile: '/srv/app/run/uwsgi.pid' });
    expect(settingsFrom({ server: 'uwsgi', strategy: 'reload', pidfile: '/run/u.pid' })).toMatchObject({ strategy: 'reload', pidfile: '/run/u.pid' });
    expect(() => settingsFrom({ server: 'uwsgi', strategy: 'usr2' })).toThrow(/Invalid input 'strategy': 'usr2' must be one of: chain, reload \(for server: uwsgi\)/);
    expect(() => settingsFrom({ strategy: 'chain' })).toThrow(/must be one of: auto, usr2, rolling, hup \(for server: gunicorn\)/);
  });

  it('takes a systemd service as a full unit name, refusing sockets, other units and shell text', () => {
    expect(settingsFrom({ service: 'gunicorn' }).service).toBe('gunicorn.service');
    expect(settingsFrom({ service: 'app@blue.service' }).service).toBe('app@blue.service');
    expect(() => settingsFrom({ service: 'gunicorn.socket' })).toThrow(/Invalid input 'service': 'gunicorn\.socket' is a socket unit: name the service it starts \(e\.g\. 'gunicorn\.service'\)/);
    expect(() => settingsFrom({ service: 'gunicorn.timer' })).toThrow(/is a \.timer unit/);
    expect(() => settingsFrom({ service: 'a;reboot' })).toThrow(/is not a systemd unit name/);
    expect(() => settingsFrom({ service: '--now' })).toThrow(/is not a systemd unit name/);
    expect(() => settingsFrom({ service: 'uwsgi', server: 'uwsgi' })).toThrow(/only a gunicorn master is found by its service/);
  });

  it('derives the release from a tag, else the short commit', () => {
    expect(releaseName('', { GITHUB_REF: 'refs/tags/v2.0.0' })).toBe('v2.0.0');
    expect(releaseName('', { GITHUB_REF: 'refs/heads/main', GITHUB_SHA: 'abcdef1234567890' })).toBe('abcdef1');
    expect(releaseName('r-7', {})).toBe('r-7');
    expect(() => releaseName('', {})).toThrow(/no release name/);
  });

  it('cleans a release name derived from a tag, but never an explicit one', () => {
    expect(releaseName('', { GITHUB_REF: 'refs/tags/release/1.2' })).toBe('release-1.2');
    expect(releaseName('', { GITHUB_REF: 'refs/tags/v1.2.3+build.4' })).toBe('v1.2.3-build.4');
    expect(releaseName('', { GITHUB_REF: 'refs/tags/v1@{x}~^2' })).toBe('v1-x-2');
    expect(() => settingsFrom({ release: 'release/1.2' })).toThrow(/Invalid input 'release': 'release\/1.2' may only contain/);
    expect(() => settingsFrom({ release: 'v1+b' })).toThrow(/Invalid input 'release'/);
  });

  it('accepts host names with an underscore', () => {
    expect(parseHosts('web_1, deploy@db_primary.internal:2222', 'deploy', 22).map((host) => host.label)).toEqual(['deploy@web_1', 'deploy@db_primary.internal:2222']);
  });

  it('reports a malformed known-hosts line by number before connecting', () => {
    const text = `# pinned\nweb1 ssh-ed25519 ${HOST_KEY}\nweb2 ssh-ed25519\n`;
    expect(() => settingsFrom({ 'known-hosts': text })).toThrow(/Invalid input 'known-hosts': line 3 \(web2 ssh-ed25519\): expected/);
    expect(() => settingsFrom({ 'known-hosts': `@cert-authority *.example.com ssh-ed25519 ${HOST_KEY}` })).toThrow(/line 1 .*@cert-authority lines are not supported/);
    expect(settingsFrom({ 'known-hosts': 'garbage', 'insecure-skip-host-key-check': 'true' }).ssh.knownHosts).toBeUndefined();
  });

  it.each(['../etc', 'v1/../x', 'a b', 'v1;id', '$(id)', '..', '.', 'a\nb', "v1'"])('rejects release name %j', (name) => {
    expect(() => settingsFrom({ release: name })).toThrow(/Invalid input 'release'/);
  });

  it.each([
    ['app-dir', 'relative/dir'],
    ['app-dir', '/srv/$(id)'],
    ['app-dir', '/'],
    ['app-dir', '/srv/../etc'],
    ['pidfile', 'run/x.pid'],
    ['port', '0'],
    ['port', '22x'],
    ['keep-releases', '1'],
    ['health-url', 'ftp://x/'],
    ['health-url', 'not a url'],
    ['health-timeout', '-1'],
    ['health-interval', 'soon'],
    ['health-successes', '0'],
    ['strategy', 'restart'],
    ['server', 'apache'],
    ['mode', 'destroy'],
    ['rollback', 'maybe'],
    ['expect-version', 'perhaps'],
    ['insecure-skip-host-key-check', 'yesplease'],
    ['shared-paths', '../secrets'],
    ['python', 'venv/bin/python'],
    ['python', '/srv/venv/bin/python;id'],
    ['shared-paths', '/etc/passwd'],
    ['shared-paths', '.env;id'],
    ['wsgi-app', 'app:application;id'],
  ])('rejects %s = %j with a message naming the input', (input, value) => {
    expect(() => settingsFrom({ [input]: value })).toThrow(new RegExp(`Invalid input '${input}'`));
  });

  it('takes a unix-socket health-url (http+unix, the socket path percent-encoded as the host) and health-host', () => {
    expect(settingsFrom({ 'health-url': 'http+unix://%2Frun%2Fgunicorn.sock/health/ready' }).health).toMatchObject({
      url: 'http+unix://%2Frun%2Fgunicorn.sock/health/ready',
      socket: '/run/gunicorn.sock',
    });
    expect(settingsFrom({ 'health-url': 'http+unix://%2Fsrv%2Fapp%2Frun%2Fg%20x.sock' }).health.socket).toBe('/srv/app/run/g x.sock');
    expect([settingsFrom({}).health.socket, settingsFrom({}).health.host]).toEqual([undefined, undefined]);
    for (const host of ['www.example.com', 'api.example.com:8443', 'localhost', '[::1]:8000', 'example.com.']) {
      expect(settingsFrom({ 'health-host': host }).health.host).toBe(host);
    }
  });

  it.each([
    ['health-url', 'http+unix:///run/gunicorn.sock/health/ready', /percent-encoded where the host would be, e\.g\. http\+unix:\/\/%2Frun%2Fgunicorn\.sock\/health\/ready/],
    ['health-url', 'http+unix://run%2Fgunicorn.sock/health/ready', /socket's absolute path/],
    ['health-url', 'unix:/run/gunicorn.sock', /must use http, https, or http\+unix/],
    ['health-host', 'https://www.example.com', /must be a host name the app serves/],
    ['health-host', 'www.example.com/health', /must be a host name/],
    ['health-host', 'a b', /must be a host name/],
    ['health-host', 'x.com:port', /must be a host name/],
  ])('rejects %s = %j saying what is expected', (input, value, message) => {
    expect(() => settingsFrom({ [input]: value })).toThrow(new RegExp(`Invalid input '${input}'`));
    expect(() => settingsFrom({ [input]: value })).toThrow(message);
  });

  it('requires known-hosts unless host key checking is turned off by name', () => {
    expect(() => settingsFrom({ 'known-hosts': '' })).toThrow(/insecure-skip-host-key-check/);
    expect(settingsFrom({ 'known-hosts': '', 'insecure-skip-host-key-check': 'true' }).ssh.knownHosts).toBeUndefined();
  });

  it('requires a key unless an agent is running, and refuses a key path', () => {
    expect(() => settingsFrom({ 'ssh-key': '' })).toThrow(/Invalid input 'ssh-key'/);
    expect(settingsFrom({ 'ssh-key': '' }, { GITHUB_REF: 'refs/tags/v1', SSH_AUTH_SOCK: '/tmp/agent' }).ssh.agent).toBe('/tmp/agent');
    expect(() => settingsFrom({ 'ssh-key': '~/.ssh/id_ed25519' })).toThrow(/not a path/);
  });

  it('keeps a trailing slash on shared directories and accepts plain files', () => {
    expect(settingsFrom({ 'shared-paths': '.env\nmedia/\n config/local.py ' }).sharedPaths).toEqual(['.env', 'media/', 'config/local.py']);
  });

  it('reads the rollout plan inputs; batch-size defaults to the rest of the fleet, or one host for strategies that stall', () => {
    expect(settingsFrom({}).rollout).toEqual({ maxParallel: 10, canary: 1, canaryWaitSeconds: 0, batchSize: { percent: 100 }, batchWaitSeconds: 0, maxFailedHosts: 0 });
    expect(settingsFrom({ strategy: 'hup' }).rollout.batchSize).toEqual({ count: 1 });
    expect(settingsFrom({ server: 'uwsgi', strategy: 'reload' }).rollout.batchSize).toEqual({ count: 1 });
    expect(settingsFrom({ server: 'uwsgi' }).rollout.batchSize).toEqual({ percent: 100 });
    // Hosts drained around their reload are capacity out of rotation: one at a time unless asked.
    const lb = { lb: 'haproxy', 'lb-host': 'lb1', 'lb-backend': 'app' };
    expect(settingsFrom({ ...lb, server: 'uwsgi' }).rollout.batchSize).toEqual({ count: 1 });
    expect(settingsFrom({ ...lb, drain: 'always' }).rollout.batchSize).toEqual({ count: 1 });
    expect(settingsFrom({ ...lb }).rollout.batchSize).toEqual({ percent: 100 });
    expect(settingsFrom({ ...lb, drain: 'always', 'batch-size': '3' }).rollout.batchSize).toEqual({ count: 3 });
    expect(settingsFrom({ hosts: 'web1,web2,web3', 'batch-size': '25%', canary: '0', 'canary-wait': '30', 'batch-wait': '5', 'max-failed-hosts': '2', 'max-parallel': '4' }).rollout).toEqual({
      maxParallel: 4,
      canary: 0,
      canaryWaitSeconds: 30,
      batchSize: { percent: 25 },
      batchWaitSeconds: 5,
      maxFailedHosts: 2,
    });
    expect(() => settingsFrom({ 'batch-size': '0' })).toThrow(/Invalid input 'batch-size': '0' must be a number of hosts \(1 or more\) or a percentage/);
    expect(() => settingsFrom({ 'batch-size': '150%' })).toThrow(/batch-size/);
    expect(() => settingsFrom({ 'max-parallel': '0' })).toThrow(/max-parallel/);
    expect(() => settingsFrom({ canary: 'one' })).toThrow(/canary/);
    // Every host allowed to fail: a release that fails everywhere would end as deployed.
    expect(() => settingsFrom({ hosts: 'web1,web2', 'max-failed-hosts': '2' })).toThrow(/Invalid input 'max-failed-hosts': '2' must be less than the number of hosts \(2\)/);
    expect(settingsFrom({ hosts: 'web1,web2', 'max-failed-hosts': '1' }).rollout.maxFailedHosts).toBe(1);
  });

  it('reads lock-wait and force-unlock; unlock mode needs no release or source', () => {
    expect(settingsFrom({ 'lock-wait': '0', 'force-unlock': 'yes' })).toMatchObject({ lockWaitSeconds: 0, forceUnlock: true });
    expect(() => settingsFrom({ 'lock-wait': '-1' })).toThrow(/Invalid input 'lock-wait'/);
    expect(settingsFrom({ mode: 'unlock', source: '.' }, {})).toMatchObject({ mode: 'unlock', release: '', source: undefined });
  });

  it('needs no release name in rollback mode', () => {
    expect(settingsFrom({ mode: 'rollback' }, {}).release).toBe('');
  });
});

describe('parseHosts', () => {
  it('reads users, ports, IPv6 and both separators', () => {
    expect(parseHosts('web1, ops@web2:2222\n[2001:db8::1]:23\n# comment\n10.0.0.5', 'deploy', 22).map((host) => host.label)).toEqual([
      'deploy@web1',
      'ops@web2:2222',
      'deploy@[2001:db8::1]:23',
      'deploy@10.0.0.5',
    ]);
  });

  it.each(['web1;id', 'web1 web2', '$(id)', 'u$er@web', 'web:99999', 'web:', '@web', '-oProxyCommand=x'])('rejects %j', (text) => {
    expect(() => parseHosts(text, 'deploy', 22)).toThrow(/Invalid input 'hosts'/);
  });

  it('rejects an empty list and duplicates', () => {
    expect(() => parseHosts(' \n ', 'deploy', 22)).toThrow(/at least one host/);
    expect(() => parseHosts('a,a', 'deploy', 22)).toThrow(/twice/);
  });
});

describe('parseSettings: the load balancer inputs', () => {
  const lb = { lb: 'haproxy', 'lb-host': 'admin@lb1:2222', 'lb-backend': 'app' };

  it('lb empty: no balancer; lb: haproxy takes the documented defaults', () => {
    expect(settingsFrom({}).balancer).toBeUndefined();
    expect(settingsFrom(lb).balancer).toMatchObject({
      kind: 'haproxy',
      host: { user: 'admin', host: 'lb1', port: 2222, label: 'admin@lb1:2222' },
      socket: '/run/haproxy/admin.sock',
      backend: 'app',
      servers: undefined,
      drain: 'auto',
      drainTimeoutSeconds: 30,
      windowSeconds: 10,
      max5xxRate: 0.02,
      latencyFactor: 3,
    });
  });

  it('names the missing or malformed piece before anything connects', () => {
    expect(() => settingsFrom({ ...lb, lb: 'nginx' })).toThrow(/Invalid input 'lb': 'nginx' must be haproxy or empty/);
    expect(() => settingsFrom({ ...lb, 'lb-host': '' })).toThrow(/Invalid input 'lb-host': the SSH host that runs HAProxy is required/);
    expect(() => settingsFrom({ ...lb, 'lb-host': 'a,b' })).toThrow(/Invalid input 'lb-host'/);
    expect(() => settingsFrom({ ...lb, 'lb-host': 'lb1;id' })).toThrow(/Invalid input 'lb-host'/);
    expect(() => settingsFrom({ ...lb, 'lb-backend': '' })).toThrow(/Invalid input 'lb-backend': the HAProxy backend/);
    expect(() => settingsFrom({ ...lb, 'lb-backend': 'app;x' })).toThrow(/Invalid input 'lb-backend'/);
    expect(() => settingsFrom({ ...lb, 'lb-socket': 'admin.sock' })).toThrow(/Invalid input 'lb-socket'/);
    expect(() => settingsFrom({ ...lb, drain: 'sometimes' })).toThrow(/Invalid input 'lb-drain': 'sometimes' must be one of: auto, always, never/);
    expect(() => settingsFrom({ ...lb, 'lb-drain-timeout': '-1' })).toThrow(/Invalid input 'lb-drain-timeout'/);
    expect(() => settingsFrom({ ...lb, 'lb-traffic-gate-max-5xx-rate': '2' })).toThrow(/Invalid input 'lb-traffic-gate-max-5xx-rate'/);
    expect(() => settingsFrom({ ...lb, 'lb-traffic-gate-latency-factor': '0.5' })).toThrow(/Invalid input 'lb-traffic-gate-latency-factor'/);
  });

  it("lb-canary-weight: a percentage of the canary's weight; 100% or empty is full weight; it needs the traffic gate and a canary", () => {
    expect(settingsFrom(lb).balancer?.canaryWeightPercent).toBeUndefined();
    expect(settingsFrom({ ...lb, 'lb-canary-weight': '10%' }).balancer?.canaryWeightPercent).toBe(10);
    expect(settingsFrom({ ...lb, 'lb-canary-weight': '25' }).balancer?.canaryWeightPercent).toBe(25);
    expect(settingsFrom({ ...lb, 'lb-canary-weight': '100%' }).balancer?.canaryWeightPercent).toBeUndefined();
    for (const bad of ['0%', '0', '101%', '5.5%', 'ten', '-10%']) {
      expect(() => settingsFrom({ ...lb, 'lb-canary-weight': bad }), bad).toThrow(/Invalid input 'lb-canary-weight': '.*' must be a percentage of the server's weight from 1% to 100%/);
    }
    expect(() => settingsFrom({ ...lb, 'lb-canary-weight': '10%', 'lb-traffic-gate-window': '0' })).toThrow(/Invalid input 'lb-canary-weight': '10%' needs the traffic gate.*lb-traffic-gate-window above 0/);
    expect(() => settingsFrom({ ...lb, 'lb-canary-weight': '10%', canary: '0' })).toThrow(/Invalid input 'lb-canary-weight': '10%' needs a canary: set canary to 1 or more/);
  });

  it('lb-servers maps every host by label, address or address:port, and refuses an unknown or missing host', () => {
    const servers = settingsFrom({ ...lb, hosts: 'web1,web2:2200', 'lb-servers': 'web1=s1\nweb2:2200=s2' }).balancer?.servers;
    expect([...(servers ?? [])]).toEqual([
      ['deploy@web1', 's1'],
      ['deploy@web2:2200', 's2'],
    ]);
    expect(() => settingsFrom({ ...lb, 'lb-servers': 'web9=s1' })).toThrow(/Invalid input 'lb-servers': 'web9' is not one of the hosts/);
    expect(() => settingsFrom({ ...lb, hosts: 'web1,web2', 'lb-servers': 'web1=s1' })).toThrow(/deploy@web2 has no server/);
    expect(() => settingsFrom({ ...lb, 'lb-servers': 'web1' })).toThrow(/'web1' must be host=server/);
    expect(() => settingsFrom({ ...lb, 'lb-servers': 'web1=s 1' })).toThrow(/Invalid input 'lb-servers'/);
  });
});

describe('jump-host', () => {
  const JUMP_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\njump\n-----END OPENSSH PRIVATE KEY-----';

  it('is absent unless named', () => {
    expect(settingsFrom({}).ssh.jump).toBeUndefined();
  });

  it('is read like a host, with port 22 and the user input as defaults, and the hosts\u2019 key', () => {
    expect(settingsFrom({ 'jump-host': 'bastion.example.com', user: 'ops', port: '2222' }).ssh.jump).toEqual({
      target: { user: 'ops', host: 'bastion.example.com', port: 22, label: 'ops@bastion.example.com' },
      privateKey: `${KEY}\n`,
      passphrase: undefined,
      agent: undefined,
    });
    expect(settingsFrom({ 'jump-host': 'jump@[2001:db8::9]:2200', 'ssh-key-passphrase': 'pw' }).ssh.jump).toMatchObject({
      target: { user: 'jump', host: '2001:db8::9', port: 2200, label: 'jump@[2001:db8::9]:2200' },
      passphrase: 'pw',
    });
  });

  it('uses the agent for the bastion when the hosts use it', () => {
    const settings = settingsFrom({ 'ssh-key': '', 'jump-host': 'bastion' }, { GITHUB_REF: 'refs/tags/v1', SSH_AUTH_SOCK: '/tmp/agent' });
    expect(settings.ssh.jump).toMatchObject({ agent: '/tmp/agent', privateKey: undefined });
  });

  it('takes its own key, without the hosts\u2019 passphrase or agent', () => {
    const jump = settingsFrom({ 'jump-host': 'bastion', 'jump-ssh-key': `${JUMP_KEY}\r\n`, 'ssh-key-passphrase': 'pw' }).ssh.jump;
    expect(jump).toEqual({ target: expect.objectContaining({ host: 'bastion' }), privateKey: `${JUMP_KEY}\n` });
  });

  it.each([
    [{ 'jump-host': 'bastion;id' }, /Invalid input 'jump-host': 'bastion;id' in 'bastion;id' is not a valid host name/],
    [{ 'jump-host': 'b1,b2' }, /Invalid input 'jump-host': 'b1,b2' names more than one host/],
    [{ 'jump-host': 'b1\nb2' }, /Invalid input 'jump-host'[^]*more than one host/],
    [{ 'jump-host': 'bastion:0' }, /Invalid input 'jump-host': '0' must be a number from 1 to 65535/],
    [{ 'jump-host': '-oProxyCommand=x' }, /Invalid input 'jump-host'/],
    [{ 'jump-host': 'bastion', 'jump-ssh-key': '~/.ssh/bastion' }, /Invalid input 'jump-ssh-key': expected the text of a private key/],
    [{ 'jump-ssh-key': JUMP_KEY }, /Invalid input 'jump-ssh-key': is set but jump-host is empty/],
  ])('rejects %j', (inputs, message) => {
    expect(() => settingsFrom(inputs)).toThrow(message);
  });
});
