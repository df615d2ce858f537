/** The units of the systemd sandbox hosts (test/support/systemd-units.ts), as text. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FORKING_PIDFILE, gunicornUnits, maskedUnits, sshService, unitPath } from '../support/systemd-units.js';

const base = {
  user: 'www-data',
  group: 'www-data',
  gunicorn: '/usr/bin/gunicorn',
  current: '/srv/gd-abc123/app/current',
} as const;

function lines(text: string | undefined): string[] {
  return (text ?? '').split('\n');
}

describe('gunicornUnits', () => {
  it('writes the docs\' notify service and socket; gunicorn takes the sockets from systemd, not --bind', () => {
    const units = gunicornUnits({ ...base, type: 'notify', socket: true, bind: ['unix:/run/gunicorn.sock', '0.0.0.0:8000'] });
    expect(lines(units.service)).toEqual(expect.arrayContaining([
      'Requires=gunicorn.socket',
      'Type=notify',
      'User=www-data',
      'Group=www-data',
      'RuntimeDirectory=gunicorn',
      'WorkingDirectory=/srv/gd-abc123/app/current',
      'ExecStart=/usr/bin/gunicorn --chdir /srv/gd-abc123/app/current -c /srv/gd-abc123/app/current/gunicorn.conf.py app:application',
      'ExecReload=/bin/kill -s HUP $MAINPID',
      'KillMode=mixed',
      'TimeoutStopSec=5',
      'PrivateTmp=true',
    ]));
    expect(units.service).not.toContain('PIDFile=');
    expect(lines(units.socket)).toEqual(expect.arrayContaining(['ListenStream=/run/gunicorn.sock', 'ListenStream=0.0.0.0:8000', 'SocketUser=www-data']));
  });

  it('daemonizes a forking unit with its pidfile in the RuntimeDirectory, and binds without a socket unit', () => {
    const units = gunicornUnits({ ...base, type: 'forking', socket: false, bind: ['0.0.0.0:8000'] });
    expect(units.socket).toBeUndefined();
    expect(lines(units.service)).toEqual(expect.arrayContaining([
      'Type=forking',
      `PIDFile=${FORKING_PIDFILE}`,
      `ExecStart=/usr/bin/gunicorn --daemon --pid ${FORKING_PIDFILE} --chdir /srv/gd-abc123/app/current -c /srv/gd-abc123/app/current/gunicorn.conf.py --bind 0.0.0.0:8000 app:application`,
    ]));
    expect(units.service).not.toContain('Requires=gunicorn.socket');
    expect(FORKING_PIDFILE.startsWith('/run/gunicorn/')).toBe(true);
  });

  it('refuses values a unit file would need to quote or expand', () => {
    expect(() => gunicornUnits({ ...base, current: '/srv/my app/current', type: 'simple', socket: false, bind: ['0.0.0.0:8000'] })).toThrow(/would need quoting/);
    expect(() => gunicornUnits({ ...base, type: 'simple', socket: false, bind: ['0.0.0.0:%i'] })).toThrow(/would need quoting/);
    expect(() => unitPath('relative/path')).toThrow(/absolute/);
    expect(() => sshService({ sshdConfig: '/tmp/x/sshd_config', sshdLog: '/tmp/$HOME/log' })).toThrow(/would need quoting/);
  });
});

describe('maskedUnits', () => {
  it('masks the boot services that would act on the real machine, and keeps journald', () => {
    const masked = maskedUnits();
    expect(masked).toEqual(expect.arrayContaining(['systemd-tmpfiles-setup.service', 'systemd-sysusers.service', 'systemd-remount-fs.service', 'systemd-udevd.service', 'systemd-tmpfiles-clean.timer']));
    expect(masked).not.toContain('systemd-journald.service');
  });
});

/**
 * examples/server/systemd is what users copy; the e2e suite deploys to the units above. The
 * directives that decide how gunicorn is reloaded must be the same in both (paths, the app
 * module and TimeoutStopSec may differ), so that what the README hands out is what was tested.
 */
describe('the example units users copy are the units the e2e suite deploys to', () => {
  const example = (name: string) => readFileSync(new URL(`../../examples/server/systemd/${name}`, import.meta.url), 'utf8');
  /** [Service] or [Socket] directives as key → value; ExecStart as its options (sorted), paths dropped. */
  const directives = (text: string | undefined): Map<string, string> => {
    const entries = (text ?? '').split('\n').filter((line) => /^[A-Z]\w*=/.test(line)).map((line) => line.split(/=(.*)/s) as [string, string]);
    return new Map(entries.map(([key, value]) => [key, key === 'ExecStart' ? value.split(' ').filter((word) => word.startsWith('--') || word === '-c').sort().join(' ') : value]));
  };
  const differing = ['Description', 'WorkingDirectory', 'TimeoutStopSec', 'RuntimeDirectoryPreserve'];
  const compare = (tested: string | undefined, copied: string) => {
    const a = directives(tested);
    const b = directives(copied);
    for (const key of differing) {
      a.delete(key);
      b.delete(key);
    }
    expect(Object.fromEntries(b)).toEqual(Object.fromEntries(a));
  };

  it('gunicorn.service + gunicorn.socket: the notify unit with socket activation', () => {
    const units = gunicornUnits({ ...base, type: 'notify', socket: true, bind: ['unix:/run/gunicorn.sock'] });
    compare(units.service, example('gunicorn.service'));
    compare(units.socket, example('gunicorn.socket'));
  });

  it('gunicorn-forking.service: the forking unit usr2 runs under, gunicorn binding its own socket', () => {
    const units = gunicornUnits({ ...base, type: 'forking', socket: false, bind: ['unix:/run/gunicorn/gunicorn.sock'] });
    compare(units.service, example('gunicorn-forking.service'));
  });
});
