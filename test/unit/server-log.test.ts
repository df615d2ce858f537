import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSource, readServerLog, serverLogSource, serverLogTailCommand } from '../../src/servers/server-log.js';
import { LocalHost } from './support/local-host.js';

describe("the server's log on a failed host", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gd-server-log-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('comes from server-log, else from the journal of service, else nowhere', () => {
    expect(serverLogSource({ serverLog: '/var/log/app.log', service: 'gunicorn.service' })).toEqual({ file: '/var/log/app.log' });
    expect(serverLogSource({ service: 'gunicorn.service' })).toEqual({ unit: 'gunicorn.service' });
    expect(serverLogSource({})).toBeUndefined();
    expect(describeSource({ unit: 'gunicorn.service' })).toBe('journal of gunicorn.service');
  });

  it('quotes the file and the unit into the tail command', () => {
    expect(serverLogTailCommand({ file: "/srv/it's.log" }).text).toBe("tail -n 30 -- '/srv/it'\\''s.log'");
    expect(serverLogTailCommand({ unit: 'app;reboot' }).text).toBe("journalctl --no-pager -o short-iso -n 30 -u 'app;reboot'");
  });

  it('reads the last 30 lines, each cut at 300 characters', async () => {
    const file = join(dir, 'error.log');
    const lines = Array.from({ length: 40 }, (_, index) => `line ${index + 1}`);
    lines[39] = `RuntimeError: ${'x'.repeat(400)}`;
    await writeFile(file, `${lines.join('\n')}\n`);
    const text = await readServerLog(new LocalHost(), { file });
    const read = text.split('\n');
    expect(read).toHaveLength(30);
    expect(read[0]).toBe('line 11');
    expect(read[29]).toHaveLength(300);
    expect(read[29]).toMatch(/^RuntimeError: x+…$/);
  });

  it('says why nothing was read instead of failing', async () => {
    expect(await readServerLog(new LocalHost(), { file: join(dir, 'missing.log') })).toMatch(/^\(nothing read: tail: cannot open .*missing\.log.*No such file/);
  });
});
