#!/usr/bin/env bash
# A real demo deploy on this machine, as root: three hosts (sshd + gunicorn in network
# namespaces) behind HAProxy, steady load, v1 → v2 through the bundled action
# (node dist/index.js), then a short report. Everything it starts is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

bash test/sandbox/install-packages.sh
bash scripts/install-action-node.sh >/dev/null
npm install --no-audit --no-fund --loglevel=error
npx tsx scripts/demo.ts "$@"
