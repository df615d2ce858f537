import { describe, expect, it } from 'vitest';
import { auditLine } from '../../src/release/audit-log.js';
import { acquireLock, describeHolder, isAlive, ownerText, parseLockHolder } from '../../src/release/deploy-lock.js';
import { layoutOf } from '../../src/release/layout.js';
import { LOCK_HELD_EXIT } from '../../src/release/release-commands.js';
import { runIdentity } from '../../src/release/run-identity.js';
import type { ExecResult, RemoteHost } from '../../src/remote/remote-host.js';

const identity = { run: 'https://github.com/acme/shop/actions/runs/41', actor: 'alice', from: 'runner-7' };

describe('run identity', () => {
  it('names the workflow run by its URL, with the attempt when it is a re-run', () => {
    expect(runIdentity({ GITHUB_REPOSITORY: 'acme/shop', GITHUB_RUN_ID: '41', GITHUB_RUN_ATTEMPT: '1', GITHUB_ACTOR: 'alice' }, 'runner-7')).toEqual(identity);
    expect(runIdentity({ GITHUB_SERVER_URL: 'https://ghe.example', GITHUB_REPOSITORY: 'a/b', GITHUB_RUN_ID: '9', GITHUB_RUN_ATTEMPT: '2', GITHUB_ACTOR: 'bob' }, 'm').run).toBe(
      'https://ghe.example/a/b/actions/runs/9/attempts/2',
    );
  });

  it('names a terminal run by user and machine, in one word', () => {
    expect(runIdentity({ USER: 'carol' }, 'my laptop')).toEqual({ run: 'local:carol@my_laptop', actor: 'carol', from: 'my_laptop' });
  });
});

describe('lock holder', () => {
  it('round-trips the owner text and reads the heartbeat age', () => {
    const holder = parseLockHolder(`${ownerText('t0k', identity, new Date('2026-01-02T03:04:05Z'))}\nheartbeat-age=12\n`);
    expect(holder).toEqual({ token: 't0k', run: identity.run, actor: 'alice', from: 'runner-7', since: '2026-01-02T03:04:05.000Z', heartbeatAge: 12 });
    expect(isAlive(holder)).toBe(true);
    expect(describeHolder(holder)).toBe(`run ${identity.run} by alice from runner-7 since 2026-01-02T03:04:05.000Z (last heartbeat 12s ago)`);
  });

  it('reads the one-line owners of earlier versions, and treats an unknown heartbeat as dead', () => {
    const holder = parseLockHolder('token=abc run=acme/shop#41 actor=bob from=x since=2025\nheartbeat-age=\n');
    expect(holder).toMatchObject({ token: 'abc', run: 'acme/shop#41', actor: 'bob', heartbeatAge: undefined });
    expect(isAlive(holder)).toBe(false);
    expect(isAlive({ heartbeatAge: 59 })).toBe(true);
    expect(isAlive({ heartbeatAge: 60 })).toBe(false);
    expect(describeHolder({})).toBe('an unknown run (no heartbeat)');
  });
});

describe('acquireLock', () => {
  /** A host whose lock is held by a live run for `heldFor` attempts. */
  function host(heldFor: number): RemoteHost & { attempts: number } {
    const stub = {
      name: 'web1',
      attempts: 0,
      exec: async (): Promise<ExecResult> => {
        stub.attempts += 1;
        return stub.attempts <= heldFor ? { code: LOCK_HELD_EXIT, stdout: 'token=x\nrun=r\nheartbeat-age=3\n', stderr: '' } : { code: 0, stdout: '', stderr: '' };
      },
      upload: async () => undefined,
      close: async () => undefined,
    };
    return stub;
  }
  const clock = () => {
    let now = 0;
    return { now: () => now, sleep: async (ms: number) => void (now += ms) };
  };

  it('retries every 5 s while a live run holds the lock, within lock-wait', async () => {
    const remote = host(3);
    const lines: string[] = [];
    await acquireLock(remote, layoutOf('/srv/app'), 'token=me', { waitSeconds: 20, log: (line) => lines.push(line), ...clock() });
    expect(remote.attempts).toBe(4);
    expect(lines).toEqual(['waiting up to 20s for the deploy lock, held by run r (last heartbeat 3s ago); a run that was killed shows as gone once its heartbeat is 60s old']);
  });

  it('gives up when lock-wait runs out, naming the holder', async () => {
    const remote = host(100);
    await expect(acquireLock(remote, layoutOf('/srv/app'), 'token=me', { waitSeconds: 12, log: () => undefined, ...clock() })).rejects.toThrow(
      /\[web1\] another deploy holds \/srv\/app\/.deploy-lock: run r \(last heartbeat 3s ago\) after waiting 12s \(lock-wait\)/,
    );
    expect(remote.attempts).toBe(3);
  });
});

describe('audit line', () => {
  it('is one greppable line per host and run', () => {
    const line = auditLine({ time: new Date('2026-11-22T10:00:00Z'), identity, mode: 'deploy', from: 'v1', to: 'v2', strategy: 'usr2', result: 'deployed', seconds: 12.345 });
    expect(line).toBe(`2026-11-22T10:00:00.000Z run=${identity.run} actor=alice deploy v1 -> v2 strategy=usr2 result=deployed seconds=12.3`);
    expect(auditLine({ time: new Date(0), identity: { ...identity, actor: 'a b' }, mode: 'unlock', strategy: 'usr2', result: 'unlocked', seconds: 0 })).toContain(
      'actor=a_b unlock - -> - strategy=usr2',
    );
  });
});
