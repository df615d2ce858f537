import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { faultedOutcome, guardRejections } from '../../src/rejection-guard.js';

/** vitest's own listener would report the rejections these tests make on purpose: set aside while each runs. */
let vitestListeners: NodeJS.UnhandledRejectionListener[] = [];
beforeEach(() => {
  vitestListeners = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
});
afterEach(() => {
  process.removeAllListeners('unhandledRejection');
  for (const listener of vitestListeners) process.on('unhandledRejection', listener);
});

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('the guard against rejections no one handled', () => {
  it('stops the run once, on the first one, and keeps it as the fault; later ones go to the log', async () => {
    const stopped: Error[] = [];
    const noted: Error[] = [];
    const guard = guardRejections((fault) => stopped.push(fault), (later) => noted.push(later));
    void Promise.reject(new Error('first stray'));
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a library may reject with anything
    void Promise.reject('second, not an Error');
    await tick();
    expect(stopped.map((error) => error.message)).toEqual(['first stray']);
    expect(noted.map((error) => error.message)).toEqual(['second, not an Error']);
    expect(guard.fault?.message).toBe('first stray');
    guard.dispose();
    expect(process.listenerCount('unhandledRejection')).toBe(0);
  });

  it('turns a value that is not an Error into one', async () => {
    const guard = guardRejections(() => undefined);
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a library may reject with anything
    void Promise.reject({ code: 42 });
    await tick();
    expect(guard.fault).toBeInstanceOf(Error);
    expect(guard.fault?.message).toMatch(/42/);
    guard.dispose();
  });

  it('makes the outcome of the stopped run a failure naming the fault and what each host serves', () => {
    const cancelled = {
      status: 'cancelled' as const,
      release: 'v2',
      strategy: 'usr2',
      hosts: [],
      error: 'cancelled by the runner; nothing new was started: web1 serves v2 (deployed), web2 serves v1 (put back).',
    };
    expect(faultedOutcome(cancelled, new Error('boom'))).toEqual({
      ...cancelled,
      status: 'failed',
      error: 'an error no code path handled stopped the run (boom); nothing new was started: web1 serves v2 (deployed), web2 serves v1 (put back).',
    });
  });
});
