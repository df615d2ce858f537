import { describe, expect, it } from 'vitest';
import { parseHosts, parseSettings, releaseName } from '../../src/config/input-helper.js';

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----';
/** A well-formed ssh-ed25519 public key (the type string and 32 key bytes). */
const HOST_KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

function settingsFrom(inputs: Record<string, string>, env: Record<string, string> = { GITHUB_REF: 'refs/tags/v1.2.3' }) {
  const all: Record<string, string> = { hosts: 'web1', 'ssh-key': KEY, 'known-hosts': `web1 ssh-ed25519 ${HOST_KEY}`, ...inputs };
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
      strategy: 'usr2',
      pidfile: '/srv/app/run/gunicorn.pid',
      rollback: 'auto',
      mode: 'deploy',
      lockWaitSeconds: 300,
      forceUnlock: false,
      health: { url: 'http://127.0.0.1:8000/health/ready', timeoutSeconds: 120, intervalSeconds: 0.5, successes: 3, expectVersion: 'auto' },
    });
    expect(settings.hosts).toEqual([{ user: 'deploy', host: 'web1', port: 22, label: 'deploy@web1' }]);
    expect(settings.ssh.privateKey).toBe(`${KEY}\n`);
  });

  it('takes the python input as an absolute path; unset, the interpreter is found on the host', () => {
    expect(settingsFrom({ python: '/srv/app/venv/bin/python3/' }).python).toBe('/srv/app/venv/bin/python3');
    expect(settingsFrom({}).python).toBeUndefined();
  });

  it('accepts server: uwsgi with its own strategies, default chain, and its own pidfile default', () => {
    expect(settingsFrom({ server: 'uwsgi' })).toMatchObject({ server: 'uwsgi', strategy: 'chain', pidfile: '/srv/app/run/uwsgi.pid' });
    expect(settingsFrom({ server: 'uwsgi', strategy: 'reload', pidfile: '/run/u.pid' })).toMatchObject({ strategy: 'reload', pidfile: '/run/u.pid' });
    expect(() => settingsFrom({ server: 'uwsgi', strategy: 'usr2' })).toThrow(/Invalid input 'strategy': 'usr2' must be one of: chain, reload \(for server: uwsgi\)/);
    expect(() => settingsFrom({ strategy: 'chain' })).toThrow(/must be one of: usr2, rolling, hup \(for server: gunicorn\)/);
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
