import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { shouldDrain } from '../../src/balancer/drain-policy.js';
import { AdminSocket, BalancerError, pythonSocketCommand } from '../../src/balancer/haproxy/admin-socket.js';
import { HaproxyBalancer } from '../../src/balancer/haproxy/haproxy-balancer.js';
import { parseHeld } from '../../src/balancer/haproxy/held-servers.js';
import { restoreBalancer } from '../../src/post-step.js';
import { parseServersState, parseShowStat, takesTraffic, type ServerStat } from '../../src/balancer/haproxy/stat-csv.js';
import { mapHostsToServers } from '../../src/balancer/server-map.js';
import { judgeTraffic } from '../../src/balancer/traffic-gate.js';
import type { BalancerSettings, HostTarget } from '../../src/config/settings.js';
import type { ExecResult, RemoteHost } from '../../src/remote/remote-host.js';
import type { ShellFragment } from '../../src/remote/shell-quote.js';
import type { HostReport } from '../../src/report/reporter.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/haproxy/${name}`, import.meta.url), 'utf8');
const host = (address: string): HostTarget => ({ user: 'deploy', host: address, port: 22, label: `deploy@${address}` });

describe('HAProxy 2.6 answers', () => {
  it('show stat: one row per server with the counters the balancer reads; FRONTEND and BACKEND left out', () => {
    const rows = parseShowStat(fixture('show-stat-2.6.csv'));
    expect(rows.map((row) => `${row.backend}/${row.server}`)).toEqual(['app/h1', 'app/h2']);
    expect(rows[0]).toMatchObject({ qcur: 0, scur: 0, status: 'UP', hrsp2xx: 10, hrsp5xx: 0, responses: 10, eresp: 0, econ: 0, wretr: 0, rtime: 3, addr: '10.247.7.1:8000' });
    expect(rows[1]).toMatchObject({ status: 'DRAIN', responses: 10, addr: '10.247.7.2:8000' });
  });

  it('show servers state: name, address and admin state (8 = drained at runtime)', () => {
    expect(parseServersState(fixture('servers-state-2.6.txt'))).toEqual([
      { backend: 'app', server: 'h1', address: '10.247.7.1', port: 8000, opState: 2, adminState: 0 },
      { backend: 'app', server: 'h2', address: '10.247.7.2', port: 8000, opState: 2, adminState: 8 },
    ]);
  });

  it('refuses text that is not the answer asked for (an error message of the CLI)', () => {
    expect(() => parseShowStat("Can't find backend.\n")).toThrow(/not a 'show stat' answer/);
    expect(() => parseServersState("Can't find backend.\n")).toThrow(/not a 'show servers state' answer/);
  });

  it('takes traffic: UP and UP going down; not DRAIN, MAINT, DOWN or DOWN going up', () => {
    const status = (value: string) => takesTraffic({ status: value } as ServerStat);
    expect(['UP', 'UP 1/2', 'no check'].map(status)).toEqual([true, true, true]);
    expect(['DRAIN', 'MAINT', 'DOWN', 'DOWN 1/2', 'NOLB'].map(status)).toEqual([false, false, false, false, false]);
  });
});

describe('mapHostsToServers', () => {
  const states = parseServersState(fixture('servers-state-2.6.txt'));

  it('matches each host by address by default', () => {
    const mapping = mapHostsToServers([host('10.247.7.2'), host('10.247.7.1')], 'app', states);
    expect(mapping.problems).toEqual([]);
    expect([...mapping.servers]).toEqual([
      ['deploy@10.247.7.2', 'h2'],
      ['deploy@10.247.7.1', 'h1'],
    ]);
  });

  it('names every host it cannot place, and the servers there are', () => {
    const mapping = mapHostsToServers([host('web1'), host('10.247.7.1')], 'app', states);
    expect(mapping.problems).toEqual(["deploy@web1: no server of backend 'app' has address web1 (servers: h1 (10.247.7.1), h2 (10.247.7.2)); name them with lb-servers"]);
    expect(mapHostsToServers([host('10.247.7.1')], 'other', states).problems[0]).toMatch(/servers: none/);
  });

  it('an explicit map wins, and each name must exist in the backend', () => {
    const explicit = new Map([['deploy@web1', 'h2']]);
    expect([...mapHostsToServers([host('web1')], 'app', states, explicit).servers]).toEqual([['deploy@web1', 'h2']]);
    expect(mapHostsToServers([host('web1')], 'app', states, new Map([['deploy@web1', 'h9']])).problems[0]).toMatch(/server 'h9' is not in backend 'app'/);
  });
});

describe('judgeTraffic', () => {
  const row = (server: string, responses: number, hrsp5xx: number, rtime = 5): ServerStat => ({
    backend: 'app', server, qcur: 0, scur: 0, status: 'UP', hrsp2xx: responses - hrsp5xx, hrsp5xx, responses, eresp: 0, econ: 0, wretr: 0, rtime, addr: '',
  });
  const limits = { max5xxRate: 0.02, latencyFactor: 3 };

  it('fails a new release that answers 500 where the old one does not', () => {
    const verdict = judgeTraffic([row('h1', 100, 0), row('h2', 100, 0)], [row('h1', 150, 50), row('h2', 150, 0)], ['h1'], limits);
    expect(verdict.ok).toBe(false);
    expect(verdict.summary).toMatch(/^error rate 100\.0% is more than 2\.0% above the old release's 0\.0%/);
  });

  it("passes when the new release fails no more than the old one's rate plus the margin", () => {
    const verdict = judgeTraffic([row('h1', 0, 0), row('h2', 0, 0)], [row('h1', 100, 5), row('h2', 100, 4)], ['h1'], limits);
    expect(verdict).toMatchObject({ ok: true, fresh: { requests: 100, errors: 5 }, baseline: { requests: 100, errors: 4 } });
  });

  it('a broken answer or failed connection HAProxy retried is not an error the clients saw, and is reported', () => {
    // CI, uWSGI reload of a good release: uWSGI closes each connection without saying so and HAProxy,
    // reusing one, retries the request: 6 of 152 attempts on the new release, none of 154 on the old.
    const after = { ...row('h2', 146, 0), eresp: 6, wretr: 6 };
    const verdict = judgeTraffic([row('h1', 0, 0), row('h2', 0, 0)], [row('h1', 154, 0), after], ['h2'], limits);
    expect(verdict).toMatchObject({ ok: true, fresh: { requests: 152, errors: 0, retried: 6 }, baseline: { requests: 154, errors: 0, retried: 0 } });
    expect(verdict.summary).toBe('new release 0/152 errors (0.0%), 6 retried by HAProxy, 5 ms; old release 0/154 (0.0%), 5 ms');
  });

  it('fails a release HAProxy must retry much more often than the old one, though clients saw no error', () => {
    const after = { ...row('h1', 80, 0), eresp: 20, wretr: 20 };
    const verdict = judgeTraffic([row('h1', 0, 0), row('h2', 0, 0)], [after, row('h2', 100, 0)], ['h1'], limits);
    expect(verdict.fresh).toMatchObject({ requests: 100, errors: 0, retried: 20 });
    expect(verdict.ok).toBe(false);
    expect(verdict.summary).toMatch(/^HAProxy had to retry 20\.0% of the attempts on it, more than 10\.0% above the old release's 0\.0%/);
  });

  it('counts broken answers and failed connections HAProxy did not retry as errors', () => {
    const after = { ...row('h1', 50, 0), eresp: 3, econ: 2 };
    const verdict = judgeTraffic([row('h1', 0, 0), row('h2', 0, 0)], [after, row('h2', 50, 0)], ['h1'], limits);
    expect(verdict.fresh).toMatchObject({ requests: 55, errors: 5 });
    expect(verdict.ok).toBe(false);
  });

  it('fails a release much slower than the old one, but never on a few milliseconds', () => {
    expect(judgeTraffic([row('h1', 0, 0), row('h2', 0, 0)], [row('h1', 50, 0, 400), row('h2', 50, 0, 20)], ['h1'], limits).summary).toMatch(/response time 400 ms is more than 3× the old release's 20 ms/);
    expect(judgeTraffic([row('h1', 0, 0), row('h2', 0, 0)], [row('h1', 50, 0, 90), row('h2', 50, 0, 2)], ['h1'], limits).ok).toBe(true);
  });

  it('an error rate that fails on 10 errors or more is decisive (the window may end early); fewer, a slow release or retries are not', () => {
    const base = [row('h1', 0, 0), row('h2', 0, 0)];
    expect(judgeTraffic(base, [row('h1', 10, 10), row('h2', 30, 0)], ['h1'], limits)).toMatchObject({ ok: false, decisive: true });
    expect(judgeTraffic(base, [row('h1', 100, 9), row('h2', 100, 0)], ['h1'], limits)).toMatchObject({ ok: false, decisive: false });
    // A healthy release's few errors: under the margin, never decisive however many.
    expect(judgeTraffic(base, [row('h1', 1000, 10), row('h2', 1000, 0)], ['h1'], limits)).toMatchObject({ ok: true, decisive: false });
    expect(judgeTraffic(base, [row('h1', 50, 0, 400), row('h2', 50, 0, 20)], ['h1'], limits)).toMatchObject({ ok: false, decisive: false });
    expect(judgeTraffic(base, [{ ...row('h1', 80, 0), eresp: 20, wretr: 20 }, row('h2', 100, 0)], ['h1'], limits)).toMatchObject({ ok: false, decisive: false });
  });

  it('fewer errors are decisive when a release within the allowed rate could not show them (below one chance in a million)', () => {
    const base = [row('h1', 0, 0), row('h2', 0, 0)];
    // Every one of the first 5 requests failed: at the allowed 2 %, a chance of 3e-9.
    expect(judgeTraffic(base, [row('h1', 5, 5), row('h2', 30, 0)], ['h1'], limits)).toMatchObject({ ok: false, decisive: true });
    expect(judgeTraffic(base, [row('h1', 8, 6), row('h2', 30, 0)], ['h1'], limits)).toMatchObject({ ok: false, decisive: true });
    // 5 in 100 fails the rate (5 % > 2 %) but happens by chance at 2 % about once in five: the window goes on.
    expect(judgeTraffic(base, [row('h1', 100, 5), row('h2', 100, 0)], ['h1'], limits)).toMatchObject({ ok: false, decisive: false });
    // The allowed rate includes the old release's own: its errors make the same count less telling.
    expect(judgeTraffic(base, [row('h1', 6, 4), row('h2', 100, 30)], ['h1'], limits)).toMatchObject({ ok: false, decisive: false });
    expect(judgeTraffic(base, [row('h1', 12, 8), row('h2', 100, 30)], ['h1'], limits)).toMatchObject({ ok: false, decisive: false });
  });

  it('too little traffic to judge passes and says so', () => {
    const verdict = judgeTraffic([row('h1', 0, 0)], [row('h1', 3, 3)], ['h1'], limits);
    expect(verdict.ok).toBe(true);
    expect(verdict.summary).toMatch(/too little traffic to judge \(3 requests/);
  });
});

describe('shouldDrain', () => {
  it.each([
    ['auto', 'gunicorn', 'hup', true],
    ['auto', 'gunicorn', 'usr2', false],
    ['auto', 'gunicorn', 'rolling', false],
    ['auto', 'uwsgi', 'reload', true],
    ['auto', 'uwsgi', 'chain', true],
    ['always', 'gunicorn', 'usr2', true],
    ['never', 'gunicorn', 'hup', false],
  ] as const)('drain %s with %s/%s → %s', (mode, server, strategy, expected) => {
    expect(shouldDrain(mode, server, strategy)).toBe(expected);
  });
});

/** A pretend HAProxy behind a RemoteHost: enough of the runtime API for the balancer's story. */
class FakeHaproxy implements RemoteHost {
  readonly name = 'root@lb';
  readonly commands: string[] = [];
  /** Per server: admin state and check status. */
  readonly servers = new Map<string, { admin: 'ready' | 'drain' | 'maint'; up: boolean; scur: number; responses: number; errors: number; weight: number; initial: number }>();
  streamLocal = true;
  /** Runs at every `show stat` (the drained server's sessions ending). */
  onShowStat?: () => void;

  constructor(names: string[], weight = 1) {
    names.forEach((name) => this.servers.set(name, { admin: 'ready', up: true, scur: 0, responses: 0, errors: 0, weight, initial: weight }));
  }

  /** The LB host out of reach: every command fails. */
  down = false;

  async socketRequest(_purpose: string, socketPath: string, request: string): Promise<string> {
    if (this.down) throw new Error('[root@lb] lost the SSH connection (Keepalive timeout)');
    if (!this.streamLocal) throw new Error('(SSH) Channel open failure: open failed');
    expect(socketPath).toBe('/run/haproxy/admin.sock');
    return this.answer(request.trim());
  }

  async exec(_purpose: string, command: ShellFragment): Promise<ExecResult> {
    if (this.down) throw new Error('[root@lb] lost the SSH connection (Keepalive timeout)');
    const match = /'([^']*)\n'$/.exec(command.text);
    return { stdout: this.answer(match?.[1] ?? ''), stderr: '', code: 0 };
  }

  async upload(): Promise<void> {}
  async close(): Promise<void> {}

  answer(command: string): string {
    this.commands.push(command);
    if (command === 'show servers state app') {
      const lines = [...this.servers.keys()].map((name, index) => `3 app ${index + 1} ${name} 10.0.0.${index + 1} 2 0 1 1 0 15 3 3 6 0 0 0 - 8000 - 0 0 - - 0`);
      return `1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n${lines.join('\n')}\n\n`;
    }
    if (command === 'show stat') {
      this.onShowStat?.();
      const rows = [...this.servers].map(([name, s]) => {
        const status = !s.up ? 'DOWN' : s.admin === 'drain' ? 'DRAIN' : s.admin === 'maint' ? 'MAINT' : 'UP';
        return `app,${name},0,${s.scur},${status},${s.responses - s.errors},${s.errors},5`;
      });
      return `# pxname,svname,qcur,scur,status,hrsp_2xx,hrsp_5xx,rtime\n${rows.join('\n')}\napp,BACKEND,0,0,UP,0,0,0\n`;
    }
    const get = /^get weight app\/(\S+)$/.exec(command);
    if (get) {
      const server = this.servers.get(get[1] ?? '');
      return server ? `${server.weight} (initial ${server.initial})\n` : 'No such server.\n';
    }
    // HAProxy 2.6: a percentage is of the configured weight, rounded down; silent on success.
    const weight = /^set weight app\/(\S+) (\d+)(%?)$/.exec(command);
    if (weight) {
      const server = this.servers.get(weight[1] ?? '');
      if (!server) return 'No such server.\n';
      server.weight = weight[3] ? Math.floor((server.initial * Number(weight[2])) / 100) : Number(weight[2]);
      return '';
    }
    const set = /^set server app\/(\S+) state (ready|drain|maint)$/.exec(command);
    const server = set && this.servers.get(set[1] ?? '');
    if (!set || !server) return 'No such server.\n';
    server.admin = set[2] as 'ready' | 'drain' | 'maint';
    // Sessions open at the drain end one per `show stat` (a request in flight finishing).
    if (server.admin === 'drain') this.onShowStat = () => (server.scur = Math.max(0, server.scur - 1));
    return '\n';
  }
}

describe('HaproxyBalancer', () => {
  const settings: BalancerSettings = {
    kind: 'haproxy', host: host('lb'), socket: '/run/haproxy/admin.sock', backend: 'app', drain: 'auto', drainTimeoutSeconds: 5, max5xxRate: 0.02, latencyFactor: 3, windowSeconds: 0,
  };
  const hosts = [host('10.0.0.1'), host('10.0.0.2')];
  const make = (fake: FakeHaproxy, drain = true) => new HaproxyBalancer({ settings, drain, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined });

  it('around: drain, wait until idle, work, ready, UP — in that order', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    const balancer = make(fake);
    await balancer.open(hosts);
    const during = await balancer.around('deploy@10.0.0.1', async () => fake.servers.get('h1')?.admin);
    expect(during).toBe('drain');
    expect(fake.servers.get('h1')?.admin).toBe('ready');
    expect(fake.commands.filter((command) => command.startsWith('set'))).toEqual(['set server app/h1 state drain', 'set server app/h1 state ready']);
    const reports: HostReport[] = [{ host: 'deploy@10.0.0.1', status: 'deployed' }];
    await balancer.close(reports);
    expect(reports[0]?.balancer).toMatchObject({ server: 'h1', sessionsAtDrain: 0, errorsDuringReload: 0 });
    expect(reports[0]?.balancer?.drainedSeconds).toBeGreaterThanOrEqual(0);
  });

  it('a failed work leaves the server drained (it may serve a broken release) until close() sets it ready', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    const balancer = make(fake);
    await balancer.open(hosts);
    await expect(balancer.around('deploy@10.0.0.1', async () => Promise.reject(new Error('reload failed')))).rejects.toThrow('reload failed');
    expect(fake.servers.get('h1')?.admin).toBe('drain');
    await balancer.close([]);
    expect(fake.servers.get('h1')?.admin).toBe('ready');
  });

  it("a rollback's around takes no cancellation: on a cancelled run it still drains, waits until idle, works and sets ready", async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    fake.servers.get('h1')!.scur = 3;
    const cancelled = new AbortController();
    cancelled.abort();
    const balancer = new HaproxyBalancer({ settings, drain: true, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined, signal: cancelled.signal });
    await balancer.open(hosts);
    const sessionsDuringWork = await balancer.around('deploy@10.0.0.1', async () => fake.servers.get('h1')?.scur, { putBack: true });
    expect(sessionsDuringWork).toBe(0);
    expect(fake.servers.get('h1')?.admin).toBe('ready');
  });

  it("a rollback on a cancelled run waits for its drain only briefly (the runner kills the step seconds after its cancel), then puts the host back all the same", async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    const cancelled = new AbortController();
    cancelled.abort();
    const balancer = new HaproxyBalancer({ settings: { ...settings, drainTimeoutSeconds: 20 }, drain: true, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined, signal: cancelled.signal });
    await balancer.open(hosts);
    fake.servers.get('h1')!.scur = 1000;
    const started = Date.now();
    const worked = await balancer.around('deploy@10.0.0.1', async () => true, { putBack: true });
    expect(worked).toBe(true);
    expect(Date.now() - started).toBeLessThan(6000);
    expect(fake.servers.get('h1')?.admin).toBe('ready');
  });

  it('SIGTERM while a drain is on its way: when the ready restoreNow sends lands first, the drain is held again, so the post step still sets it ready', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    let held: string[] = [];
    const balancer = new HaproxyBalancer({ settings, drain: true, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined, remember: (state) => (held = state.drained) });
    await balancer.open(hosts);
    const request = fake.socketRequest.bind(fake);
    fake.socketRequest = async (purpose, socketPath, line) => {
      // The runner's SIGTERM handler (restoreNow) gets its ready to HAProxy before the drain lands.
      if (line.trim() === 'set server app/h1 state drain') await balancer.restoreNow();
      return request(purpose, socketPath, line);
    };
    // Killed during the work: what the post step would read is what was held then.
    const heldDuringWork = await balancer.around('deploy@10.0.0.1', async () => [...held]);
    expect(fake.commands).toContain('set server app/h1 state drain');
    expect(heldDuringWork).toEqual(['h1']);
    expect(fake.servers.get('h1')?.admin).toBe('ready');
  });

  it('forward work: a cancel during the drain wait stops before the work; the server stays drained until close()', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    fake.servers.get('h1')!.scur = 50;
    const controller = new AbortController();
    const balancer = new HaproxyBalancer({ settings, drain: true, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined, signal: controller.signal });
    await balancer.open(hosts);
    let worked = false;
    const drainOnce = fake.answer.bind(fake);
    fake.answer = (command) => {
      if (command === 'set server app/h1 state drain') controller.abort();
      return drainOnce(command);
    };
    await expect(balancer.around('deploy@10.0.0.1', async () => (worked = true))).rejects.toThrow(/cancelled: did not wait for h1 to drain/);
    expect(worked).toBe(false);
    expect(fake.servers.get('h1')?.admin).toBe('drain');
    await balancer.close([]);
    expect(fake.servers.get('h1')?.admin).toBe('ready');
  });

  it('forward work that fails before it starts (HAProxy garbled an answer during the drain wait) sets the server ready again at once: the rollout may go on without that host', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    fake.servers.get('h1')!.scur = 50;
    const balancer = make(fake);
    await balancer.open(hosts);
    let worked = false;
    let drained = false;
    const answer = fake.answer.bind(fake);
    fake.answer = (command) => {
      if (command === 'set server app/h1 state drain') drained = true;
      else if (command === 'show stat' && drained) {
        drained = false;
        fake.commands.push(command);
        return 'Unknown command.\n';
      }
      return answer(command);
    };
    await expect(balancer.around('deploy@10.0.0.1', async () => (worked = true))).rejects.toThrow();
    expect(worked).toBe(false);
    expect(fake.servers.get('h1')?.admin).toBe('ready');
  });

  it('HAProxy out of reach during a rollback: the host is put back all the same, and the run names the server that may stay drained', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    const warnings: string[] = [];
    const held: string[] = [];
    const balancer = new HaproxyBalancer({ settings, drain: true, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined, warn: (line) => warnings.push(line), remember: (state) => held.push(state.drained.join(',')) });
    await balancer.open(hosts);
    await expect(balancer.around('deploy@10.0.0.1', async () => Promise.reject(new Error('gate failed')))).rejects.toThrow('gate failed');
    fake.down = true;
    let putBack = false;
    await balancer.around('deploy@10.0.0.1', async () => (putBack = true), { putBack: true });
    expect(putBack).toBe(true);
    expect(warnings.join('\n')).toMatch(/deploy@10\.0\.0\.1 is back on its previous release, but app\/h1 may stay drained/);
    const reports: HostReport[] = [{ host: 'deploy@10.0.0.1', status: 'rolled-back' }];
    await balancer.close(reports);
    expect(reports[0]?.balancer?.leftDrained).toMatch(/may stay drained\. Run 'set server app\/h1 state ready'/);
    // Saved for the post step at the drain, and still held after close: the post step sets it ready.
    expect(held).toEqual(['h1', 'h1']);
    fake.down = false;
    expect(await restoreBalancer(settings, { backend: 'app', drained: ['h1'], lowered: [] }, async () => fake, () => undefined)).toEqual([]);
    expect(fake.servers.get('h1')?.admin).toBe('ready');
  });

  it('the traffic gate reads four times a second and fails as soon as the errors decide it, long before its window ends', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    const balancer = new HaproxyBalancer({ settings: { ...settings, windowSeconds: 30 }, drain: false, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined });
    await balancer.open(hosts);
    // Each reading: h1 (the new release) answered 4 more requests, all 500; h2, 8 good ones.
    fake.onShowStat = () => {
      const [h1, h2] = [fake.servers.get('h1')!, fake.servers.get('h2')!];
      Object.assign(h1, { responses: h1.responses + 4, errors: h1.errors + 4 });
      h2.responses += 8;
    };
    const t0 = Date.now();
    await expect(balancer.trafficCheck(['deploy@10.0.0.1'])).rejects.toThrow(/the traffic gate failed on h1: error rate 100\.0% .*\(decided after 0\.\ds of the 30s window\)/);
    // Two readings: 4 requests are too few to judge, 8 failed of 8 decide.
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('a server the traffic gate fails is drained at once, before the throw: its clients stop meeting the release while the host is put back', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    const held: string[] = [];
    const balancer = new HaproxyBalancer({ settings: { ...settings, windowSeconds: 30 }, drain: true, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined, remember: (state) => held.push(state.drained.join(',')) });
    await balancer.open(hosts);
    await balancer.around('deploy@10.0.0.1', async () => undefined);
    fake.onShowStat = () => {
      const h1 = fake.servers.get('h1')!;
      Object.assign(h1, { responses: h1.responses + 10, errors: h1.errors + 10 });
    };
    await expect(balancer.trafficCheck(['deploy@10.0.0.1'])).rejects.toThrow(/the traffic gate failed on h1/);
    expect(fake.servers.get('h1')?.admin).toBe('drain');
    expect(held.at(-1)).toBe('h1');
    fake.onShowStat = undefined;
    await balancer.around('deploy@10.0.0.1', async () => undefined, { putBack: true });
    expect(fake.servers.get('h1')?.admin).toBe('ready');
    expect(fake.commands.filter((command) => command === 'set server app/h1 state drain')).toHaveLength(2);
  });

  it('drains a failed server even when the strategy does not drain (usr2 with drain: auto), but never with drain: never', async () => {
    const failing = (fake: FakeHaproxy) => () => {
      const h1 = fake.servers.get('h1')!;
      Object.assign(h1, { responses: h1.responses + 10, errors: h1.errors + 10 });
    };
    for (const [mode, expected] of [['auto', 'drain'], ['never', 'ready']] as const) {
      const fake = new FakeHaproxy(['h1', 'h2']);
      const balancer = new HaproxyBalancer({ settings: { ...settings, drain: mode, windowSeconds: 30 }, drain: false, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined });
      await balancer.open(hosts);
      await balancer.around('deploy@10.0.0.1', async () => undefined);
      fake.onShowStat = failing(fake);
      await expect(balancer.trafficCheck(['deploy@10.0.0.1'])).rejects.toThrow(/the traffic gate failed on h1/);
      expect(fake.servers.get('h1')?.admin, `drain: ${mode}`).toBe(expected);
      fake.onShowStat = undefined;
      await balancer.around('deploy@10.0.0.1', async () => undefined, { putBack: true });
      expect(fake.servers.get('h1')?.admin, `drain: ${mode}, put back`).toBe('ready');
    }
  });

  describe('lb-canary-weight', () => {
    const weighted: BalancerSettings = { ...settings, canaryWeightPercent: 10, windowSeconds: 0.05 };
    const plan = [
      { hosts: ['deploy@10.0.0.1'], canary: true },
      { hosts: ['deploy@10.0.0.2'], canary: false },
    ];
    const sets = (fake: FakeHaproxy) => fake.commands.filter((command) => command.startsWith('set'));
    const makeWeighted = (fake: FakeHaproxy, extra: Partial<ConstructorParameters<typeof HaproxyBalancer>[0]> = {}) =>
      new HaproxyBalancer({ settings: weighted, drain: true, connect: async () => fake, upTimeoutSeconds: 2, log: () => undefined, ...extra });

    it("refuses a weight that would round to 0 (HAProxy's default weight 1) before any change, naming the weight needed", async () => {
      const fake = new FakeHaproxy(['h1', 'h2']);
      await expect(makeWeighted(fake).open(hosts, undefined, plan)).rejects.toThrow(
        /lb-canary-weight 10% of app\/h1's weight 1 is 0, which would take the canary out of rotation: give the backend's servers a weight of 10 or more .*Nothing was changed/,
      );
      expect(sets(fake)).toEqual([]);
    });

    it('the canary takes the lowered weight from before its switch until the traffic gate passes, then its full weight; other hosts keep theirs', async () => {
      const fake = new FakeHaproxy(['h1', 'h2'], 100);
      const held: string[] = [];
      const balancer = makeWeighted(fake, { remember: (state) => held.push(state.lowered.join(',')) });
      await balancer.open(hosts, undefined, plan);
      const during = await balancer.around('deploy@10.0.0.1', async () => fake.servers.get('h1')?.weight, { canary: true });
      expect(during).toBe(10);
      expect(fake.servers.get('h1')?.weight).toBe(10);
      await balancer.trafficCheck(['deploy@10.0.0.1']);
      expect(fake.servers.get('h1')?.weight).toBe(100);
      expect(sets(fake)).toEqual(['set weight app/h1 10', 'set server app/h1 state drain', 'set server app/h1 state ready', 'set weight app/h1 100%']);
      // Saved for the post step before the command, and cleared once back.
      expect(held[0]).toBe('h1');
      expect(held.at(-1)).toBe('');
      await balancer.around('deploy@10.0.0.2', async () => undefined);
      await balancer.trafficCheck(['deploy@10.0.0.2']);
      expect(fake.servers.get('h2')?.weight).toBe(100);
      expect(sets(fake).filter((command) => command.includes('weight'))).toHaveLength(2);
    });

    it('a canary the gate fails stays light while it is put back, then takes its full weight again', async () => {
      const fake = new FakeHaproxy(['h1', 'h2'], 100);
      const balancer = makeWeighted(fake);
      await balancer.open(hosts, undefined, plan);
      await expect(balancer.around('deploy@10.0.0.1', async () => Promise.reject(new Error('gate failed')), { canary: true })).rejects.toThrow('gate failed');
      expect(fake.servers.get('h1')).toMatchObject({ weight: 10, admin: 'drain' });
      const weightDuringPutBack = await balancer.around('deploy@10.0.0.1', async () => fake.servers.get('h1')?.weight, { putBack: true });
      expect(weightDuringPutBack).toBe(10);
      expect(fake.servers.get('h1')).toMatchObject({ weight: 100, admin: 'ready' });
    });

    it('close() and the post step put a lowered weight back whatever happened; what cannot be reached is named with its command', async () => {
      const fake = new FakeHaproxy(['h1', 'h2'], 100);
      const balancer = makeWeighted(fake);
      await balancer.open(hosts, undefined, plan);
      await expect(balancer.around('deploy@10.0.0.1', async () => Promise.reject(new Error('cancelled')), { canary: true })).rejects.toThrow('cancelled');
      await balancer.close([]);
      expect(fake.servers.get('h1')).toMatchObject({ weight: 100, admin: 'ready' });

      fake.answer('set weight app/h2 10');
      expect(await restoreBalancer(weighted, { backend: 'app', drained: [], lowered: ['h2'] }, async () => fake, () => undefined)).toEqual([]);
      expect(fake.servers.get('h2')?.weight).toBe(100);
      fake.down = true;
      const left = await restoreBalancer(weighted, { backend: 'app', drained: [], lowered: ['h2'] }, async () => fake, () => undefined);
      expect(left.join('\n')).toMatch(/could not set app\/h2 back to its full weight .*Run 'set weight app\/h2 100%'/);
      expect(await restoreBalancer(undefined, { backend: 'app', drained: ['h1'], lowered: ['h2'] }, async () => fake, () => undefined)).toEqual([
        "the main step left app/h1 drained, app/h2 at a canary's weight in HAProxy, but lb is empty now: run 'set server app/h1 state ready', 'set weight app/h2 100%' on HAProxy's admin socket.",
      ]);
    });
  });

  it('the post step names what it could not set back when HAProxy is out of reach', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    fake.down = true;
    const left = await restoreBalancer(settings, { backend: 'app', drained: ['h1', 'h2'], lowered: [] }, async () => fake, () => undefined);
    expect(left.join('\n')).toMatch(/could not set app\/h1 back to ready .*Run 'set server app\/h1 state ready'/);
    expect(left).toHaveLength(2);
    // A state saved before lowered existed still reads.
    expect(parseHeld(JSON.stringify({ backend: 'app', drained: ['h1'] }))).toEqual({ backend: 'app', drained: ['h1'], lowered: [] });
    expect(parseHeld('')).toBeUndefined();
  });

  it('refuses a plan that drains the last server taking traffic, before any command changes anything', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    fake.answer('set server app/h2 state maint');
    await expect(make(fake).open(hosts)).rejects.toThrow(/the plan drains app\/h1 would leave the backend with no server UP/);
    expect(fake.commands.filter((command) => command.startsWith('set'))).toEqual(['set server app/h2 state maint']);
    // Without drain the plan is fine.
    await make(fake, false).open(hosts);
  });

  it('refuses hosts HAProxy does not know, naming them', async () => {
    await expect(make(new FakeHaproxy(['h1', 'h2'])).open([host('10.0.0.9')])).rejects.toThrow(/deploy@10\.0\.0\.9: no server of backend 'app' has address 10\.0\.0\.9/);
  });

  it('falls back to python3 on the LB host when sshd refuses the streamlocal channel', async () => {
    const fake = new FakeHaproxy(['h1', 'h2']);
    fake.streamLocal = false;
    const lines: string[] = [];
    const socket = new AdminSocket(fake, '/run/haproxy/admin.sock', (line) => lines.push(line));
    expect(parseShowStat(await socket.send('show stat')).map((row) => row.server)).toEqual(['h1', 'h2']);
    expect(lines[0]).toMatch(/refused a streamlocal channel .* through python3/);
    await expect(socket.expectSilent('set server app/zz state drain')).rejects.toThrow(BalancerError);
  });

  it('the python3 command quotes the socket path and the command as single words', () => {
    const text = pythonSocketCommand("/run/x y/admin.sock", "set server app/h1 state drain").text;
    expect(text).toMatch(/^python3 -c '/);
    expect(text).toContain(" '/run/x y/admin.sock' 'set server app/h1 state drain\n'");
  });
});
