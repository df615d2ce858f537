#!/bin/bash
# Builds a virtualenv as most production hosts have one: Debian's python3, an upstream gunicorn
# release in its site-packages, setproctitle available (so gunicorn overwrites the master's
# argv with its title) and a bin/gunicorn entry script whose shebang is the venv's python.
# Usage: make-venv.sh <venv-dir> <gunicorn-release-dir (holds gunicorn/)>
set -euo pipefail
venv=${1:?venv dir} release=${2:?gunicorn release dir}
[ -d "$release/gunicorn" ] || { echo "make-venv.sh: no gunicorn package in $release" >&2; exit 2; }

/usr/bin/python3 -m venv --without-pip "$venv"
site=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
ln -s "$(realpath "$release/gunicorn")" "$site/gunicorn"
ln -s /usr/lib/python3/dist-packages/setproctitle* "$site/"
printf '#!%s/bin/python3\nimport sys\nfrom gunicorn.app.wsgiapp import run\nsys.exit(run())\n' "$venv" >"$venv/bin/gunicorn"
chmod +x "$venv/bin/gunicorn"
# Fails here, not in the first test, if the venv cannot import what it must.
"$venv/bin/python3" -c 'import gunicorn, setproctitle; print(gunicorn.__version__)'
