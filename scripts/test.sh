#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine, as root: installs the Debian packages the real
# sandbox needs (sshd, gunicorn, HAProxy, Alembic, PostgreSQL), the npm dependencies, then the
# unit and end-to-end suites. The end-to-end suite runs the committed bundle, dist/index.js, on
# Node 24 (what action.yml declares), installed from the npm registry by install-action-node.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

bash test/sandbox/install-packages.sh
bash scripts/install-action-node.sh >/dev/null
bash test/sandbox/cleanup.sh
npm install --no-audit --no-fund --loglevel=error
npm run -s build
npx vitest run "$@"
