import { describe, expect, it } from 'vitest';
import { HostKeyError, HostUnreachableError } from '../../src/errors.js';
import { keepaliveOf, reconnect } from '../../src/remote/ssh-link.js';

describe('keepaliveOf', () => {
  it('declares a silent connection dead after about connect-timeout', () => {
    expect(keepaliveOf(20)).toEqual({ keepaliveInterval: 5000, keepaliveCountMax: 3 });
    // ssh2 gives up on the (countMax + 1)th unanswered keepalive.
    const { keepaliveInterval = 0, keepaliveCountMax = 0 } = keepaliveOf(60);
    expect(keepaliveInterval * (keepaliveCountMax + 1)).toBe(60_000);
    expect(keepaliveOf(1).keepaliveInterval).toBe(1000);
  });
});

describe('reconnect', () => {
  const waits: number[] = [];
  const policy = { delaysMs: [1000, 3000, 9000], sleep: async (ms: number) => void waits.push(ms) };

  it('returns the first connection that opens, after bounded waits', async () => {
    waits.length = 0;
    let calls = 0;
    const link = await reconnect('deploy@web1:22', 'Keepalive timeout', async () => {
      calls += 1;
      if (calls < 3) throw new Error('connect ECONNREFUSED');
      return 'link';
    }, policy);
    expect(link).toBe('link');
    expect(waits).toEqual([1000, 3000, 9000]);
  });

  it('gives up with a HostUnreachableError naming the host, the loss and the last failure', async () => {
    waits.length = 0;
    const attempt = reconnect('deploy@web1:22', 'Keepalive timeout', () => Promise.reject(new HostUnreachableError('cannot connect over SSH: Timed out while waiting for handshake', 'deploy@web1:22')), policy);
    await expect(attempt).rejects.toThrow(HostUnreachableError);
    await expect(attempt).rejects.toThrow(
      '[deploy@web1:22] the SSH connection was lost (Keepalive timeout) and 3 attempts to reconnect failed (last: cannot connect over SSH: Timed out while waiting for handshake)',
    );
    expect(waits).toEqual([1000, 3000, 9000]);
  });

  it('does not retry a host key refusal', async () => {
    let calls = 0;
    const attempt = reconnect('web1', 'read ECONNRESET', () => {
      calls += 1;
      return Promise.reject(new HostKeyError('refusing to connect', 'web1'));
    }, policy);
    await expect(attempt).rejects.toThrow(HostKeyError);
    expect(calls).toBe(1);
  });
});
