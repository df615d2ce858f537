#!/bin/bash
# Removes leftover sandboxes: every run dir /tmp/gd-<id>, network namespace gd<id>h<N> / gd<id>jb,
# link gd<id>br / gd<id>h<N> / gd<id>jb, systemd host cgroup gd-<id>-h<N> and dir /srv/gd-<id>
# whose owning test process is gone. Sandboxes of a live test run (another
# engineer's, a parallel job's) are left alone unless --force is given. For CI before tests.
# Usage: cleanup.sh [--force]
set -u
here=$(cd "$(dirname "$0")" && pwd)
force=0
[ "${1:-}" = "--force" ] && force=1

owner_alive() {   # <owner file>: "pid starttime" of the process that started the sandbox
  local pid start stat
  read -r pid start <"$1" 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }                      # drop "pid (comm) ": comm may contain spaces
  [ "${stat%% *}" != Z ] && [ "$(cut -d' ' -f20 <<<"$stat")" = "$start" ]   # a zombie is dead
}

ids=$(
  {
    for dir in /tmp/gd-*; do [ -d "$dir" ] && basename "$dir" | sed -n 's/^gd-\([a-z0-9]\{6\}\)$/\1/p'; done
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^gd\([a-z0-9]\{6\}\)\(h[0-9]\+\|lb\|jb\)$/\1/p'
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | sed -n 's/^gd\([a-z0-9]\{6\}\)\(br\|h[0-9]\+\|lb\|jb\)$/\1/p'
    # systemd sandboxes: /srv/gd-<id> and the hosts' cgroups gd-<id>-h<N>
    for dir in /srv/gd-* /sys/fs/cgroup/unified/gd-* /sys/fs/cgroup/gd-*; do [ -d "$dir" ] && basename "$dir" | sed -n 's/^gd-\([a-z0-9]\{6\}\)\(-h[0-9]\+\)\?$/\1/p'; done
  } | sort -u
)

removed=0 kept=0
for id in $ids; do
  root=/tmp/gd-$id
  if [ $force = 0 ]; then
    if [ -f "$root/owner" ] && owner_alive "$root/owner"; then
      echo "cleanup.sh: keeping sandbox $id (owner pid $(cut -d' ' -f1 "$root/owner") is alive)"
      kept=$((kept + 1)); continue
    fi
    # A sandbox being created right now writes its owner file just after mkdir.
    if [ -d "$root" ] && [ ! -f "$root/owner" ] && [ -n "$(find "$root" -maxdepth 0 -newermt '-60 seconds')" ]; then
      echo "cleanup.sh: keeping sandbox $id (being created)"
      kept=$((kept + 1)); continue
    fi
  fi
  echo "cleanup.sh: removing sandbox $id"
  "$here/teardown.sh" "$id"
  removed=$((removed + 1))
done
echo "cleanup.sh: removed $removed, kept $kept"
