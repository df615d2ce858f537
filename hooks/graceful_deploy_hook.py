"""Readiness hook for graceful-deploy's `rolling` strategy (and a stronger signal for `usr2`).

Add to gunicorn.conf.py (put this file next to it, or on the PYTHONPATH):

    from graceful_deploy_hook import post_worker_init

If you already have a post_worker_init, call this one from yours:

    import graceful_deploy_hook
    def post_worker_init(worker):
        ...your code...
        graceful_deploy_hook.post_worker_init(worker)

Right after a worker has imported the app, the hook sends one request to the readiness path
*inside the worker* (no socket: it calls the WSGI app directly through `worker.wsgi`) and
writes what the app answered to `<ready dir>/<worker pid>`:

    200<TAB>v2<TAB>200 OK

(status code, the X-App-Version header if the app sends one, the status line). The action reads these
marks over SSH to know that this very worker is ready before it retires an old one.

Settings (environment of the gunicorn master):
- GRACEFUL_DEPLOY_READY_DIR: where marks go. Default: `ready/` beside the pidfile.
- GRACEFUL_DEPLOY_STATUS_PATH: the path requested. Default: `/health/ready`.

The hook never raises: an exception in post_worker_init would make the worker exit, and a
worker that fails to boot halts the gunicorn master.
"""

import io
import os
import sys


def _ready_dir(worker):
    explicit = os.environ.get("GRACEFUL_DEPLOY_READY_DIR")
    if explicit:
        return explicit
    pidfile = getattr(worker.cfg, "pidfile", None)
    if pidfile:
        return os.path.join(os.path.dirname(os.path.abspath(pidfile)), "ready")
    return None


def _ask_app(worker, path):
    answer = {"status": "0 no response", "version": ""}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status
        for name, value in headers:
            if name.lower() == "x-app-version":
                answer["version"] = value
        return lambda data: None

    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "0",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    body = worker.wsgi(environ, start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close:
            close()
    code = answer["status"].split(" ", 1)[0]
    return "%s\t%s\t%s" % (code, answer["version"], answer["status"])


def post_worker_init(worker):
    try:
        directory = _ready_dir(worker)
        if not directory:
            return
        mark = _ask_app(worker, os.environ.get("GRACEFUL_DEPLOY_STATUS_PATH", "/health/ready"))
        os.makedirs(directory, exist_ok=True)
        pid = os.getpid()
        temporary = os.path.join(directory, ".%d.tmp" % pid)
        with open(temporary, "w") as handle:
            handle.write(mark + "\n")
        os.replace(temporary, os.path.join(directory, str(pid)))
    except Exception as error:  # never let the hook stop a worker from booting
        try:
            worker.log.warning("graceful-deploy ready hook: %r", error)
        except Exception:
            pass
