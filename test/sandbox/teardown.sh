#!/bin/bash
# Removes everything of one sandbox: its processes, network namespaces, veths, bridge, HAProxy,
# watchdog, run directory and, for systemd hosts, their cgroups and /srv/gd-<id>. Idempotent and best effort: safe to run twice, on a half-created
# sandbox, or concurrently with another teardown of the same id; it always exits 0 for a valid id.
# Usage: teardown.sh <id>
set -u
id=${1:-}
[[ $id =~ ^[a-z0-9]{6}$ ]] || { echo "teardown.sh: bad sandbox id '$id'" >&2; exit 2; }
root=/tmp/gd-$id

# Two teardowns of one id (stop() and the watchdog) must not interleave.
if [ -d "$root" ]; then
  exec 9>>"$root/.teardown.lock" && flock -w 20 9
fi

# The hosts gd<id>h<N>, the load balancer's host gd<id>lb and, in bastion mode, the jump host gd<id>jb.
host_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^gd${id}(h[0-9]+|lb|jb)$"; }

# Kills the pid written in <pidfile> only if its command line mentions <marker>: pidfiles go
# stale and pids get reused, so never signal a pid we have not recognised.
kill_recognised() {
  local pidfile=$1 marker=$2 pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [ "$pid" != "$$" ] || return 0         # the watchdog execs teardown.sh: don't kill ourselves
  if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$marker"; then
    kill -KILL "$pid" 2>/dev/null
  fi
}

kill_recognised "$root/watchdog.pid" "watchdog.sh $id"
kill_recognised "$root/haproxy.pid" "$root/haproxy.cfg"

# Every process in a host's network namespace: the outer unshare (whose death takes the host's
# whole pid namespace down through --kill-child), sshd, gunicorn, anything a test started there.
for attempt in $(seq 1 50); do
  pids=$(for ns in $(host_namespaces); do ip netns pids "$ns" 2>/dev/null; done)
  [ -z "$pids" ] && break
  kill -KILL $pids 2>/dev/null
  sleep 0.1
done
[ -z "${pids:-}" ] || echo "teardown.sh: processes still in sandbox $id after 5 s: $pids" >&2

# systemd hosts (SandboxOptions.systemd): each host's processes are also in its cgroup
# gd-<id>-<name>, including any a unit moved into another network namespace. cgroup.kill takes
# them all; the dirs (systemd's tree inside, deepest first) go once they are empty.
host_cgroups() { ls -d /sys/fs/cgroup/unified/gd-"$id"-* /sys/fs/cgroup/gd-"$id"-* 2>/dev/null; }
for cg in $(host_cgroups); do
  for attempt in $(seq 1 50); do
    procs=$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)
    [ -z "$procs" ] && break
    if [ -e "$cg/cgroup.kill" ]; then echo 1 >"$cg/cgroup.kill" 2>/dev/null; else kill -KILL $procs 2>/dev/null; fi
    sleep 0.1
  done
  find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  [ ! -e "$cg" ] || echo "teardown.sh: could not remove cgroup $cg (processes: $procs)" >&2
done

for ns in $(host_namespaces); do ip netns delete "$ns" 2>/dev/null; done
# Deleting a namespace deletes the veth inside it and so its root-side peer; the bridge and any
# veth left from an interrupted create-net.sh go explicitly.
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^gd${id}(br|h[0-9]+|lb|jb)$"); do
  ip link delete "$link" 2>/dev/null
done

# --one-file-system: never follow a mount into something that isn't the sandbox's own.
# /srv/gd-<id>: a systemd sandbox's app dir mount point and venvs, outside /tmp because the
# tutorial units' PrivateTmp=true hides /tmp from the service.
for dir in "$root" "/srv/gd-$id"; do
  rm -rf --one-file-system "$dir" 2>/dev/null
  [ ! -e "$dir" ] || echo "teardown.sh: could not remove $dir" >&2
done
exit 0
