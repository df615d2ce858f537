# gunicorn.conf.py for graceful-deploy: put it in your repository's root, so every release
# carries its own (gunicorn reads the one in `current` at each reload).
import multiprocessing
import os

# Under systemd the unit starts gunicorn with --chdir /srv/app/current: imports go through the
# `current` link, so the workers a reload starts load the release `current` points to.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# Rolling and hup need preload_app off (workers must import the new code themselves).
preload_app = False
# What a worker gets to finish its requests when it is retired.
graceful_timeout = 30
timeout = 30
# Where graceful-deploy finds the master: the `pidfile` input's default, <app-dir>/run/gunicorn.pid
# (with another app-dir, change it here too). gunicorn writes it, so run/ must be writable by the
# user gunicorn runs as. A --pid on the command line (the forking systemd unit) wins over it.
pidfile = "/srv/app/run/gunicorn.pid"
# Under --daemon, "-" (stdout, stderr) goes nowhere, so the error log goes to a file beside the
# pidfile: run/ is already writable by the app's user, and the action reads the file as the SSH
# user, or as `become` when set. Give the action `server-log: /srv/app/run/error.log` to get its
# last lines in the job summary when a host fails. Under a systemd unit without --daemon,
# errorlog = "-" sends it to the journal instead, which the action reads with `service`.
errorlog = "/srv/app/run/error.log"
accesslog = "-"  # under --daemon this goes nowhere too: log requests in your web server, or name a file

# Optional, recommended for strategy rolling: each new worker reports "ready" from inside
# (see hooks/graceful_deploy_hook.py in the graceful-deploy repository; copy it beside this file).
try:
    from graceful_deploy_hook import post_worker_init  # noqa: F401
except ImportError:
    pass
