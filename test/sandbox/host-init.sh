#!/bin/bash
# PID 1 of one sandbox host. Started by sandbox.ts as
#   nsenter --net=/run/netns/gd<id>h<N> unshare --mount --propagation private --pid --fork \
#           --mount-proc --kill-child /bin/bash host-init.sh <hostdir> <appdir> <reaper.py>
# so it runs in the host's network namespace and in a fresh, private mount + pid namespace:
#   - <hostdir>/app is bind-mounted on <appdir>: every host sees its own files at the same path;
#   - <hostdir>/home is bind-mounted on /root: a clean root home like a fresh server's (the
#     machine's own /root/.bashrc starts pyenv, which would change `python3` in ssh sessions);
#   - /proc shows only this host's processes (ps/pgrep on a host see that host alone);
#   - with a fourth argument `private-run` (the load balancer's host): a tmpfs on /run, so
#     /run/haproxy/admin.sock is this host's own path, as on a real LB, invisible outside.
# Mounts made here are invisible outside the host. Killing the outer unshare (--kill-child) or
# this process ends every process of the host.
set -euo pipefail
hostdir=${1:?hostdir} appdir=${2:?appdir} reaper=${3:?reaper} run=${4:-}

mount --bind "$hostdir/app" "$appdir"
mount --bind "$hostdir/home" /root
if [ "$run" = private-run ]; then
  mount -t tmpfs -o mode=0755 gd-run /run
  mkdir -p /run/haproxy
fi
mkdir -p /run/sshd && chmod 0755 /run/sshd   # sshd's privilege-separation directory

/usr/sbin/sshd -D -f "$hostdir/sshd_config" -E "$hostdir/sshd.log" &
echo "host-init: mounts done, sshd started (pid $! in the host)"

# From now on only reap: daemonized gunicorn masters are re-parented to PID 1, and a process
# that nobody waits for stays a zombie that `kill -0` still reports alive.
exec /usr/bin/python3 "$reaper"
