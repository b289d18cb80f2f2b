"""The daemon ends with the process that started it: ``anyi2v daemon --exit-with-parent PID``.

The studio starts its embedded daemon in a session of its own (so a Ctrl-C in the studio's terminal does
not reach it), and closes it on exit; a studio killed outright (SIGKILL, a crash) closes nothing, and its
daemon would run on, holding the data folder and the GPU. With ``--exit-with-parent`` the daemon checks
twice a second from a thread and stops as on SIGTERM (the running job goes back to the queue) once:

* ``PID`` was its parent at start and ``os.getppid()`` is no longer it (the daemon was re-parented: no
  pid reuse can fool this), or
* no process ``PID`` exists (when ``PID`` is another ancestor, e.g. a launcher between them).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ParentWatch", "process_exists", "watch_parent"]

log = logging.getLogger("anyi2v.daemon")


def process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts: it is gone once its parent reaps it)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill would terminate it there: ask for a handle instead
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        alive = bool(ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
        ctypes.windll.kernel32.CloseHandle(handle)
        return alive  # 259: STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@dataclass
class ParentWatch:
    """A running watch; :meth:`stop` ends its thread (at its next check) without calling back."""

    pid: int
    thread: threading.Thread
    stopped: threading.Event

    def stop(self) -> None:
        self.stopped.set()


def watch_parent(pid: int, on_gone: Callable[[], None], interval: float = 0.5) -> ParentWatch:
    """Call ``on_gone`` once, from a daemon thread, when process ``pid`` has ended (see the module's rules)."""
    is_parent = os.getppid() == pid
    stopped = threading.Event()

    def watch() -> None:
        while not stopped.wait(interval):
            if (is_parent and os.getppid() != pid) or not process_exists(pid):
                log.info("the parent process %d is gone: stopping", pid)
                on_gone()
                return

    thread = threading.Thread(target=watch, name="anyi2v-parent-watch", daemon=True)
    thread.start()
    return ParentWatch(pid, thread, stopped)
