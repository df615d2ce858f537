#!/bin/bash
# Tears a sandbox down once the process that owns it is gone, however it ended (even SIGKILL,
# when no exit handler of the test run can fire). Started detached by sandbox.ts.
# Usage: watchdog.sh <id> <owner pid> <owner start time (field 22 of /proc/<pid>/stat)>
id=${1:?id} owner=${2:?owner pid} start=${3:?owner start time}
here=$(cd "$(dirname "$0")" && pwd)
root=/tmp/gd-$id

# The start time guards against the owner's pid being reused by an unrelated process; a zombie
# (state Z) is dead, whatever its parent takes to collect it (this machine's PID 1 is slow).
owner_alive() {
  local stat
  stat=$(cat "/proc/$owner/stat" 2>/dev/null) || return 1
  stat=${stat##*) }                      # drop "pid (comm) ": comm may contain spaces
  [ "${stat%% *}" != Z ] && [ "$(cut -d' ' -f20 <<<"$stat")" = "$start" ]
}

while [ -d "$root" ] && owner_alive; do sleep 1; done
[ -d "$root" ] || exit 0                 # stopped normally
echo "watchdog: owner $owner of sandbox $id is gone, tearing down" >&2
exec "$here/teardown.sh" "$id"
