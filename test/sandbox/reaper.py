"""PID 1 of a sandbox host once it is set up (see host-init.sh): reaps every child, including
the orphans the kernel re-parents here (daemonized gunicorn masters, old masters after USR2),
so an exited process disappears at once instead of lingering as a zombie. Exits on TERM/INT,
which takes every process of the host's pid namespace with it."""
import os
import signal
import sys

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
# Blocked signals stay pending until sigwait takes them, so no SIGCHLD is lost between reaps.
signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)

while True:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    if signal.sigwait(SIGNALS) != signal.SIGCHLD:
        sys.exit(0)
