#!/bin/bash
# PID 1 of a systemd host (started by systemd-host.sh) until it execs systemd; the host's own
# mount, pid, uts, cgroup (and network) namespaces, so nothing mounted here is seen outside.
#   - /sys read-only, the host's cgroup2 tree on /sys/fs/cgroup, /proc/sys read-only (keeps
#     systemd-sysctl and friends off the real machine), a tmpfs on /run;
#   - <hostdir>/units on /etc/systemd/system: the host's units and the masks (sandbox.ts) that
#     keep systemd-tmpfiles (which would empty the real /tmp), systemd-sysusers (the real
#     /etc/passwd) and the other machine-wide boot services from running; an empty dir over the
#     system generators; <hostdir>/hostname on /etc/hostname (systemd sets the hostname from it), <hostdir>/hosts on
#     /etc/hosts (the machine's plus `127.0.1.1 <hostname>`, as Debian writes it: sudo resolves it);
#   - systemd logs to the host's journald (journalctl in the host: unit starts, stops, failures);
#     journald keeps it in the host's /run (Storage=volatile), never in the machine's
#     /var/log/journal, and does not read the machine's kernel log; /dev/null on /dev/console, so
#     that nothing (early boot lines, unit status) reaches the machine's console;
#   - like host-init.sh: <hostdir>/app on <appdir>, <hostdir>/home on /root;
#   - with --deploy-home <dir>: <hostdir>/deploy-home on <dir> (the deploy user's home, private to
#     this host) and <hostdir>/sudoers.d on /etc/sudoers.d (sudo rules of this host only).
# Usage: systemd-init.sh <hostdir> <appdir> [--deploy-home <dir>]
set -euo pipefail
hostdir=${1:?hostdir} appdir=${2:?appdir}
shift 2
deploy_home=""
while [ $# -gt 0 ]; do
  case $1 in
    --deploy-home) deploy_home=${2:?--deploy-home needs a dir}; shift 2 ;;
    *) echo "systemd-init.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

mount --make-rprivate /
mount -t sysfs -o ro sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
mount -t tmpfs -o mode=0755 gd-run /run
mkdir -p /run/lock /run/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nReadKMsg=no\n' >/run/systemd/journald.conf.d/graceful-deploy-sandbox.conf
mount --bind "$hostdir/units" /etc/systemd/system
# No generators: the machine's fstab, sysv scripts, gettys and the like are not the host's, and
# running them at boot and at every daemon-reload costs seconds.
mount --bind "$hostdir/generators" "$(realpath /lib/systemd/system-generators)"
mount --bind "$hostdir/hostname" /etc/hostname
mount --bind "$hostdir/hosts" /etc/hosts
mount --bind /dev/null /dev/console
mount --bind "$hostdir/app" "$appdir"
mount --bind "$hostdir/home" /root
if [ -n "$deploy_home" ]; then
  mount --bind "$hostdir/deploy-home" "$deploy_home"
  mount --bind "$hostdir/sudoers.d" /etc/sudoers.d
fi
# The host's own /tmp and /var/tmp (tmpfs): a PrivateTmp=true unit's systemd-private-* dirs live
# there and go with the host's mount namespace. On the machine's /tmp they stayed behind, since
# teardown SIGKILLs systemd before it can remove them. The run dir (sshd's config and keys, the
# host dirs) is bound back at its own path.
rundir=$(dirname "$hostdir")
mkdir /run/gd-rundir
mount --bind "$rundir" /run/gd-rundir
mount -t tmpfs -o mode=1777 gd-tmp /tmp
mount -t tmpfs -o mode=1777 gd-var-tmp /var/tmp
mkdir -p "$rundir"
mount --move /run/gd-rundir "$rundir"
rmdir /run/gd-rundir
echo "systemd-init: mounts done, starting systemd"

# container=: systemd's container mode (no kernel setup, no console takeover); a clean
# environment, as a booting machine gives its PID 1.
exec /usr/bin/env -i container=graceful-deploy-sandbox PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=gd-host.target --log-target=journal --log-level=info
