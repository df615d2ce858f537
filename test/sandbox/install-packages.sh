#!/usr/bin/env bash
# Installs every Debian package the end-to-end sandbox and the project's tests use.
# Idempotent and quiet: when everything is present it only asks dpkg and exits (well under a
# second), so CI can call it unconditionally. Needs root; made for Debian 12 (bookworm).
set -euo pipefail

packages=(
  gunicorn python3-setproctitle          # the server under test; setproctitle gives master/worker titles
  python3-venv                           # virtualenvs for upstream gunicorn releases (make-venv.sh)
  haproxy                                # load balancer in front of the sandbox hosts
  openssh-server openssh-client          # sshd per host, ssh/ssh-keygen for keys and tests
  iproute2 procps util-linux curl        # ip netns/veth, ps/pgrep, unshare/nsenter/flock, probes
  alembic python3-alembic python3-sqlalchemy python3-psycopg2 postgresql   # migration tests
  python3-django                         # manage.py migrate as migrate-command (real-django.test.ts)
  python3-flask-migrate                  # flask db upgrade as migrate-command (real-flask-migrate.test.ts)
  uwsgi uwsgi-plugin-python3             # the other supported server
  python3-gevent python3-uvicorn         # worker classes gevent and uvicorn.workers.UvicornWorker
  nftables                               # connection-loss tests drop a host's SSH packets
  systemd dbus                           # systemd sandbox hosts (real systemd as each host's PID 1, D-Bus for systemctl as a user)
  sudo                                   # the deploy user of sudoUser sandboxes (sudo -n -u www-data)
)

if [ "$(id -u)" != 0 ]; then
  echo "install-packages.sh: must run as root (it calls apt-get)" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-packages.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-packages.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/install-packages.XXXXXX.log)
# Quiet on success, the whole apt output on failure.
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-packages.sh: apt-get failed (log above, also in $log)" >&2
  exit 1
fi
rm -f "$log"
echo "install-packages.sh: done"
