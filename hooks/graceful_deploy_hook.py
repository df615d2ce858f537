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

An ASGI app (gunicorn with `uvicorn.workers.UvicornWorker`, or gunicorn 26's ASGI worker) cannot
answer yet when post_worker_init runs: its event loop, and the lifespan startup that FastAPI's
startup handlers run in, come later. For it the hook asks at the worker's first heartbeat, which
these workers send from inside their event loop once the lifespan startup is done and the
socket is served, and sends the request through the ASGI app in that loop.

(status code, the X-App-Version header if the app sends one, the status line). The action reads these
marks over SSH to know that this very worker is ready before it retires an old one.

Settings (environment of the gunicorn master):
- GRACEFUL_DEPLOY_READY_DIR: where marks go. Default: `ready/` beside the pidfile.
- GRACEFUL_DEPLOY_STATUS_PATH: the path requested. Default: `/health/ready`.

The hook never raises: an exception in post_worker_init would make the worker exit, and a
worker that fails to boot halts the gunicorn master.
"""

import asyncio
import inspect
import io
import os
import sys
from http import HTTPStatus


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


def _is_asgi(app):
    # An ASGI app is a coroutine function, or an object whose __call__ is one (Starlette,
    # FastAPI, ASGI middleware); a WSGI callable never is.
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(getattr(app, "__call__", None))


async def _ask_asgi_app(app, path):
    answer = {"status": 0, "version": ""}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 0),
        "server": ("localhost", 0),
    }
    requested = {"done": False}
    answered = asyncio.Event()

    async def receive():
        if not requested["done"]:
            requested["done"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # Like a server: the client goes away once the whole response has been sent.
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"x-app-version":
                    answer["version"] = value.decode("latin-1")
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            answered.set()

    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    code = answer["status"]
    try:
        line = "%d %s" % (code, HTTPStatus(code).phrase)
    except ValueError:
        line = str(code) if code else "0 no response"
    return "%s\t%s\t%s" % (code, answer["version"], line)


def _write_mark(directory, mark):
    os.makedirs(directory, exist_ok=True)
    pid = os.getpid()
    temporary = os.path.join(directory, ".%d.tmp" % pid)
    with open(temporary, "w") as handle:
        handle.write(mark + "\n")
    os.replace(temporary, os.path.join(directory, str(pid)))


def _warn(worker, error):
    try:
        worker.log.warning("graceful-deploy ready hook: %r", error)
    except Exception:
        pass


def _mark_asgi_at_first_heartbeat(worker, app, directory, path):
    # worker.notify() is the heartbeat; the ASGI workers call it from inside their event loop,
    # first right after the lifespan startup (uvicorn: its first tick; gunicorn 26: its serve loop).
    heartbeat = worker.notify

    async def ask():
        try:
            mark = await _ask_asgi_app(app, path)
        except Exception as error:
            mark = "0\t\t%r" % (error,)
        try:
            _write_mark(directory, mark)
        except Exception as error:
            _warn(worker, error)

    def first_heartbeat():
        worker.notify = heartbeat
        heartbeat()
        try:
            # Kept on the worker: the loop holds its tasks only weakly.
            worker._graceful_deploy_ready = asyncio.get_running_loop().create_task(ask())
        except Exception as error:
            # A worker class that beats outside its loop: a failed mark says why, rather than none (a wait until timeout).
            try:
                _write_mark(directory, "0\t\tthe ready hook could not ask the ASGI app at the first heartbeat: %r" % (error,))
            except Exception as failure:
                _warn(worker, failure)

    worker.notify = first_heartbeat


def post_worker_init(worker):
    try:
        directory = _ready_dir(worker)
        if not directory:
            return
        path = os.environ.get("GRACEFUL_DEPLOY_STATUS_PATH", "/health/ready")
        # gunicorn's ASGI worker (26.0+) keeps its app as worker.asgi; uvicorn's, as worker.wsgi.
        asgi = getattr(worker, "asgi", None) or getattr(worker, "wsgi", None)
        if _is_asgi(asgi):
            _mark_asgi_at_first_heartbeat(worker, asgi, directory, path)
            return
        _write_mark(directory, _ask_app(worker, path))
    except Exception as error:  # never let the hook stop a worker from booting
        _warn(worker, error)
