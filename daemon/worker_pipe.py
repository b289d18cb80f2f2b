"""The server's end of the worker's pipe, read and written by threads so the server's loop never waits.

A worker that stops reading (stopped with SIGSTOP, or stuck) lets the pipe fill, and a worker stopped
halfway through writing a large message (a frame) leaves it half there: a plain ``send`` or ``recv``
on the server's thread would then block the whole loop, heartbeats and hang timer included. Here a
writer thread sends what :meth:`WorkerPipe.send` queued, and a reader thread receives whole messages
into a queue and wakes the loop through a small OS pipe (:meth:`WorkerPipe.fileno`, for its poller);
:meth:`WorkerPipe.take` hands over what has arrived without blocking. A message that cannot be
unpickled is logged and skipped; the rest still arrive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from typing import Any

log = logging.getLogger("anyi2v.daemon")

#: The most messages waiting to be written. The server sends one job at a time, at most one cancel for
#: it and one stop, so only a bug reaches this; past it a message is dropped, logged.
MAX_WAITING_TO_SEND = 16
#: The most messages read but not yet taken by the loop; past it the reader waits (and so the worker).
MAX_WAITING_TO_TAKE = 64
_POLL_SECONDS = 0.5  # how often a waiting reader checks whether it should end


class WorkerPipe:
    """Non-blocking ends of a ``multiprocessing`` connection to one worker process."""

    def __init__(self, connection: Any, name: str) -> None:
        self._connection = connection
        self._to_send: queue.Queue[tuple[Any, ...] | None] = queue.Queue(MAX_WAITING_TO_SEND)
        self._received: queue.Queue[tuple[Any, ...]] = queue.Queue(MAX_WAITING_TO_TAKE)
        self._closing = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._writer = threading.Thread(target=self._write, name=f"{name}-writer", daemon=True)
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._writer.start()
        self._reader.start()

    def fileno(self) -> int:
        """Readable when messages are waiting to be taken (for the server's poller)."""
        return self._wake_read

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue ``message`` for the worker; never blocks."""
        try:
            self._to_send.put_nowait(message)
        except queue.Full:
            log.error("the worker is not reading its pipe; %r not sent", message[:2])

    def take(self) -> list[tuple[Any, ...]]:
        """The messages received so far, in order; never blocks."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass
        messages = []
        with contextlib.suppress(queue.Empty):
            while True:
                messages.append(self._received.get_nowait())
        return messages

    def finish(self, timeout: float) -> list[tuple[Any, ...]]:
        """Once the worker has ended: the rest of what it sent, read to the end of the pipe (waiting up
        to ``timeout`` seconds for it)."""
        deadline = time.monotonic() + timeout
        messages = self.take()
        while self._reader.is_alive() and time.monotonic() < deadline:
            self._reader.join(0.05)
            messages += self.take()  # room for the reader, whose queue is bounded
        return messages + self.take()

    def close(self, timeout: float) -> bool:
        """End both threads and close the connection; call once the worker process has ended (its end
        of the pipe closed, so blocked reads and writes return). False, and the connection left open,
        when a thread is still blocked after ``timeout`` seconds."""
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._to_send.put_nowait(None)
        self._writer.join(timeout)
        self._reader.join(timeout)
        if self._writer.is_alive() or self._reader.is_alive():
            log.error("the worker's pipe is still in use after the worker ended; left open")
            return False
        self._connection.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        return True

    def _write(self) -> None:
        while True:
            message = self._to_send.get()
            if message is None:
                return
            try:
                self._connection.send(message)
            except (OSError, ValueError):  # the worker has ended; the server learns it from its sentinel
                return

    def _read(self) -> None:
        while not self._closing.is_set():
            try:
                message = self._connection.recv()
            except (EOFError, OSError):  # the worker has ended and all it sent has been read
                break
            except Exception as error:  # one unreadable message: its bytes are consumed, the rest follow
                log.error("a message from the worker could not be read (%s: %s); skipped", type(error).__name__, error)
                continue
            while not self._closing.is_set():
                try:
                    self._received.put(message, timeout=_POLL_SECONDS)
                    break
                except queue.Full:
                    continue
            self._wake()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # a full wake pipe is already readable
            os.write(self._wake_write, b"\0")
