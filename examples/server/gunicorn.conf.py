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
accesslog = "-"
errorlog = "-"

# Optional, recommended for strategy rolling: each new worker reports "ready" from inside
# (see hooks/graceful_deploy_hook.py in the graceful-deploy repository; copy it beside this file).
try:
    from graceful_deploy_hook import post_worker_init  # noqa: F401
except ImportError:
    pass
