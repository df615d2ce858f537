#!/bin/bash
# Starts one systemd host of a sandbox (SandboxOptions.systemd). Run by sandbox.ts in the root
# namespace; ends as the host's outer unshare, whose only child is the host's PID 1 (systemd).
#   1. a cgroup2 dir gd-<id>-<name> in the machine's cgroup2 tree, with this process in it: the
#      --cgroup namespace below makes it the host's cgroup root, where systemd builds its tree;
#   2. the host's network namespace, and new mount, pid, uts and cgroup namespaces;
#   3. systemd-init.sh as PID 1 (mounts, then exec systemd).
# Killing the outer unshare (--kill-child) or the host's systemd ends every process of the host;
# teardown.sh does that with SIGKILL (systemd as PID 1 takes SIGTERM as "re-execute") and
# removes the cgroup dir.
# Usage: systemd-host.sh <id> <name> <hostdir> <appdir> [--deploy-home <dir>]
set -euo pipefail
id=${1:?id} name=${2:?name} hostdir=${3:?hostdir} appdir=${4:?appdir}
shift 4
[[ $id =~ ^[a-z0-9]{6}$ ]] || { echo "systemd-host.sh: bad sandbox id '$id'" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)

# A machine in hybrid mode (v1 controllers) has its cgroup2 tree at /sys/fs/cgroup/unified, a
# unified one at /sys/fs/cgroup itself. teardown.sh looks in both.
cgbase=/sys/fs/cgroup/unified
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && cgbase=/sys/fs/cgroup
[ "$(stat -fc %T "$cgbase" 2>/dev/null)" = cgroup2fs ] || { echo "systemd-host.sh: no cgroup2 hierarchy at $cgbase" >&2; exit 1; }
cg=$cgbase/gd-$id-$name
mkdir "$cg"
echo $$ >"$cg/cgroup.procs"

exec nsenter "--net=/run/netns/gd$id$name" -- \
  unshare --mount --propagation private --pid --fork --mount-proc --uts --cgroup --kill-child -- \
  /bin/bash "$here/systemd-init.sh" "$hostdir" "$appdir" "$@"
