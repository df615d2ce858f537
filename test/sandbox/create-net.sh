#!/usr/bin/env bash
# Creates the network of one sandbox and prints the /24 prefix it chose (e.g. "10.231.17"):
#   - bridge gd<id>br in the root namespace, address <prefix>.254/24
#   - per host N: network namespace gd<id>h<N>, veth gd<id>h<N> (root side, on the bridge) <->
#     eth0 (inside), address <prefix>.N/24, loopback up. No default route inside: a host can
#     only reach the other hosts and <prefix>.254, never the outside world.
#   - with a third argument `lb`: one more namespace gd<id>lb at <prefix>.250, the load
#     balancer's host, wired the same way.
# Usage: create-net.sh <id> <hosts> [lb]. On failure the caller runs teardown.sh <id>.
set -euo pipefail

id=${1:?usage: create-net.sh <id> <hosts>}
hosts=${2:?usage: create-net.sh <id> <hosts>}
lb=${3:-}
[ -z "$lb" ] || [ "$lb" = lb ] || { echo "create-net.sh: third argument must be 'lb'" >&2; exit 2; }
[[ $id =~ ^[a-z0-9]{6}$ ]] || { echo "create-net.sh: bad sandbox id '$id'" >&2; exit 2; }
[[ $hosts =~ ^[0-9]+$ ]] && ((hosts >= 1 && hosts <= 50)) || { echo "create-net.sh: hosts must be 1..50" >&2; exit 2; }
bridge="gd${id}br"

# A /24 is free when no route lies inside it and the only routes covering it are default routes
# (a 10.0.0.0/8 route would mean a real network uses it).
subnet_free() {
  [ -z "$(ip -4 route show table all root "$1.0/24")" ] &&
    ! ip -4 route show table all match "$1.0/24" | grep -qvE '^(unreachable |blackhole |prohibit )?default'
}

# Serialise the choice with sandboxes starting at the same time: between the check and the
# address that reserves the subnet nobody else may look.
lock=/run/lock/graceful-deploy-sandbox.lock
[ -d /run/lock ] || lock=/tmp/graceful-deploy-sandbox.lock
exec 9>"$lock"
flock -w 30 9 || { echo "create-net.sh: could not take $lock within 30 s" >&2; exit 1; }

prefix=""
for _ in $(seq 1 100); do
  candidate="10.$((200 + RANDOM % 55)).$((RANDOM % 256))"
  if subnet_free "$candidate"; then prefix=$candidate; break; fi
done
[ -n "$prefix" ] || { echo "create-net.sh: no free 10.2xx.yyy.0/24 found" >&2; exit 1; }

ip link add name "$bridge" type bridge stp_state 0 forward_delay 0
ip addr add "$prefix.254/24" dev "$bridge"
ip link set "$bridge" up
flock -u 9

add_host() {
  local ns=$1 address=$2
  ip netns add "$ns"
  ip link add name "$ns" type veth peer name eth0 netns "$ns"
  ip link set "$ns" master "$bridge" up
  ip -n "$ns" addr add "$address/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
}
for n in $(seq 1 "$hosts"); do add_host "gd${id}h${n}" "$prefix.$n"; done
[ -z "$lb" ] || add_host "gd${id}lb" "$prefix.250"

echo "$prefix"
