#!/usr/bin/env bash
# Creates the network of one sandbox and prints the /24 prefix it chose (e.g. "10.231.17"):
#   - bridge gd<id>br in the root namespace, address <prefix>.254/24
#   - per host N: network namespace gd<id>h<N>, veth gd<id>h<N> (root side, on the bridge) <->
#     eth0 (inside), address <prefix>.N/24, loopback up. No default route inside: a host can
#     only reach the other hosts and <prefix>.254, never the outside world.
#   - with the argument `lb`: one more namespace gd<id>lb at <prefix>.250, the load
#     balancer's host, wired the same way.
#   - with the argument `bastion`:
#     - namespace gd<id>jb (veth gd<id>jb on the bridge), address <prefix>.253/24: the jump host;
#     - in each host, nftables table `inet gdbastion` resetting every SSH connection that does not
#       come from <prefix>.253, so the hosts' sshd is reachable only through the bastion (their
#       app port stays open to HAProxy).
# Usage: create-net.sh <id> <hosts> [lb] [bastion]. On failure the caller runs teardown.sh <id>.
set -euo pipefail

id=${1:?usage: create-net.sh <id> <hosts> [lb] [bastion]}
hosts=${2:?usage: create-net.sh <id> <hosts> [lb] [bastion]}
lb=""
bastion=""
for flag in "${@:3}"; do
  case $flag in
    lb) lb=lb ;;
    bastion) bastion=bastion ;;
    *) echo "create-net.sh: extra arguments must be 'lb' or 'bastion', got '$flag'" >&2; exit 2 ;;
  esac
done
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

# A namespace on the bridge: add_machine <ns> <address>
add_machine() {
  ip netns add "$1"
  ip link add name "$1" type veth peer name eth0 netns "$1"
  ip link set "$1" master "$bridge" up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" link set lo up
}

for n in $(seq 1 "$hosts"); do
  add_machine "gd${id}h${n}" "$prefix.$n"
  if [ -n "$bastion" ]; then
    ip netns exec "gd${id}h${n}" nft -f - <<NFT
table inet gdbastion {
  chain in {
    type filter hook input priority 0;
    tcp dport 22 ip saddr != $prefix.253 reject with tcp reset
  }
}
NFT
  fi
done
[ -z "$lb" ] || add_machine "gd${id}lb" "$prefix.250"
[ -z "$bastion" ] || add_machine "gd${id}jb" "$prefix.253"

echo "$prefix"
