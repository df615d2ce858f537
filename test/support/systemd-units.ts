/**
 * The systemd units of a systemd sandbox host (SandboxOptions.systemd), as text: the host's boot
 * target, its sshd, the masks that keep machine-wide boot services off the real machine, and
 * gunicorn.service / gunicorn.socket the way gunicorn's own docs (docs/source/deploy.rst,
 * "Systemd") and the common tutorials write them. Pure functions; sandbox.ts writes the files.
 */
import { readdirSync } from 'node:fs';

/** The unit systemd boots (`--unit=`): sshd only; the app's units are started by the tests. */
export const HOST_TARGET = 'gd-host.target';
const SYSTEM_UNITS = '/lib/systemd/system';
/**
 * Units masked in every systemd host (symlinks to /dev/null). The host shares the machine's
 * filesystem, so a boot service would act on the real machine: systemd-tmpfiles-setup would
 * empty the real /tmp (`D /tmp`), systemd-sysusers would edit the real /etc/passwd, ldconfig,
 * random-seed, machine-id-commit, update-utmp would write the machine's files. Everything
 * sysinit.target pulls in goes, except journald (`journalctl -u gunicorn` works in a host).
 */
export function maskedUnits(): string[] {
  let wanted: string[] = [];
  try {
    wanted = readdirSync(`${SYSTEM_UNITS}/sysinit.target.wants`);
  } catch {
    /* no such dir: only the explicit ones below */
  }
  const masked = new Set(wanted.filter((unit) => unit !== 'systemd-journald.service'));
  // Pulled in elsewhere (remount-fs, udevd, the tmpfiles timer), or fatal to the machine if a
  // distribution moved them out of sysinit.target.wants (tmpfiles-setup, sysusers).
  for (const unit of ['systemd-remount-fs.service', 'systemd-udevd.service', 'systemd-tmpfiles-clean.timer', 'systemd-tmpfiles-setup.service', 'systemd-sysusers.service']) {
    masked.add(unit);
  }
  return [...masked].sort();
}

export function hostTarget(): string {
  return `# Booted by the sandbox host's systemd (--unit=${HOST_TARGET}): test/support/sandbox.ts
[Unit]
Description=graceful-deploy sandbox host
# D-Bus as on a real server: systemctl as a user other than root (become: www-data) asks systemd through it.
Wants=ssh.service dbus.socket
`;
}

/**
 * The host's sshd, with the sandbox's own sshd_config (keys, known_hosts and logins exactly as
 * in a normal sandbox). Named ssh.service as on Debian, whose own unit it replaces.
 */
export function sshService(p: { sshdConfig: string; sshdLog: string }): string {
  return `# sshd of a systemd sandbox host: test/support/sandbox.ts
[Unit]
Description=OpenBSD Secure Shell server (graceful-deploy sandbox)

[Service]
ExecStart=/usr/sbin/sshd -D -f ${unitPath(p.sshdConfig)} -E ${unitPath(p.sshdLog)}
ExecReload=/bin/kill -HUP $MAINPID
# Sessions outlive a restart of the listener, as on Debian.
KillMode=process
Restart=on-failure
RuntimeDirectory=sshd
RuntimeDirectoryMode=0755
`;
}

export type GunicornUnitType = 'notify' | 'simple' | 'forking';

export interface GunicornUnitOptions {
  type: GunicornUnitType;
  /** gunicorn.socket holds the listening sockets and starts the service on the first connection. */
  socket: boolean;
  user: string;
  group: string;
  /** gunicorn `--bind` addresses: `unix:/path` or `host:port`. With `socket`, the socket's ListenStream= lines. */
  bind: string[];
  /** The gunicorn entry point (Debian's /usr/bin/gunicorn or a venv's bin/gunicorn). */
  gunicorn: string;
  /** The app dir's `current` link: working dir, --chdir, and where gunicorn.conf.py is read. */
  current: string;
}

/** The pidfile of a Type=forking unit (its PIDFile=), in the unit's RuntimeDirectory. */
export const FORKING_PIDFILE = '/run/gunicorn/gunicorn.pid';

/**
 * gunicorn.service (and gunicorn.socket when `socket`), as deploy.rst writes them: Type=notify,
 * User/Group, RuntimeDirectory=gunicorn, WorkingDirectory, ExecReload HUP, KillMode=mixed,
 * TimeoutStopSec=5, PrivateTmp=true; the socket on /run/gunicorn.sock owned by www-data.
 *
 * `--chdir` and `-c` name the `current` link: systemd resolves WorkingDirectory once and sets
 * no $PWD, so a gunicorn re-executed by USR2 would return to the old release's directory; the
 * link in --chdir (which each master and worker follows when it loads the app) and an absolute
 * config path make it load whatever `current` names then.
 */
export function gunicornUnits(o: GunicornUnitOptions): { service: string; socket?: string } {
  const forking = o.type === 'forking';
  const execStart = [
    unitPath(o.gunicorn),
    ...(forking ? ['--daemon', '--pid', FORKING_PIDFILE] : []),
    '--chdir', unitPath(o.current),
    '-c', unitPath(`${o.current}/gunicorn.conf.py`),
    // Socket activation: gunicorn takes systemd's sockets (LISTEN_FDS) and ignores --bind.
    ...(o.socket ? [] : o.bind.flatMap((address) => ['--bind', unitWord(address)])),
    'app:application',
  ].join(' ');
  const service = `# gunicorn.service of a systemd sandbox host (test/support/sandbox.ts), after gunicorn's docs/source/deploy.rst
[Unit]
Description=gunicorn daemon
${o.socket ? 'Requires=gunicorn.socket\n' : ''}After=network.target

[Service]
Type=${o.type}
${forking ? `PIDFile=${FORKING_PIDFILE}\n` : ''}User=${unitWord(o.user)}
Group=${unitWord(o.group)}
RuntimeDirectory=gunicorn
WorkingDirectory=${unitPath(o.current)}
ExecStart=${execStart}
ExecReload=/bin/kill -s HUP $MAINPID
KillMode=mixed
TimeoutStopSec=5
PrivateTmp=true

[Install]
WantedBy=multi-user.target
`;
  if (!o.socket) return { service };
  const socket = `# gunicorn.socket of a systemd sandbox host (test/support/sandbox.ts), after gunicorn's docs/source/deploy.rst
[Unit]
Description=gunicorn socket

[Socket]
${o.bind.map((address) => `ListenStream=${listenStream(address)}`).join('\n')}
# Only the proxy needs the socket; gunicorn inherits it by socket activation.
SocketUser=www-data

[Install]
WantedBy=sockets.target
`;
  return { service, socket };
}

/** A gunicorn bind address as a ListenStream= value: `unix:/run/x.sock` → `/run/x.sock`, `0.0.0.0:8000` as is. */
function listenStream(address: string): string {
  return address.startsWith('unix:') ? unitPath(address.slice('unix:'.length)) : unitWord(address);
}

/** An absolute path that needs no quoting in a unit file (no spaces, `%` specifiers or `$`). */
export function unitPath(path: string): string {
  if (!path.startsWith('/')) throw new Error(`systemd unit: '${path}' must be an absolute path`);
  return unitWord(path);
}

function unitWord(value: string): string {
  if (!/^[A-Za-z0-9_@+=:,./[\]-]+$/.test(value)) throw new Error(`systemd unit: '${value}' would need quoting; use letters, digits and _@+=:,./[]-`);
  return value;
}
