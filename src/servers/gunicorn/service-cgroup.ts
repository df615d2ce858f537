import { sh, type ShellFragment } from '../../remote/shell-quote.js';

/** Prints /proc/<pid>/cgroup (empty when unreadable: no cgroups, or another user's process). */
export function cgroupCommand(pid: number): ShellFragment {
  return sh`cat /proc/${pid}/cgroup 2>/dev/null; true`;
}

/**
 * The systemd service unit a process runs in, read from /proc/<pid>/cgroup, or undefined.
 * systemd puts every unit in a cgroup of its own name (`/system.slice/app.service`, or a
 * user's `/user.slice/user-1000.slice/user@1000.service/app.slice/app.service`), on the v2
 * line (`0::`) or the v1 `name=systemd` line. `user@<uid>.service` is the user's manager: a
 * process below it counts only when a deeper `.service` holds it (a login shell's scope does not).
 */
export function systemdServiceOf(cgroupText: string): string | undefined {
  for (const line of cgroupText.split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? [];
    if (path === undefined || !(controllers === '' || controllers === 'name=systemd')) continue;
    const services = path.split('/').filter((segment) => segment.endsWith('.service') && !/^user@\d+\.service$/.test(segment));
    const unit = services.pop();
    if (unit) return unit;
  }
  return undefined;
}
