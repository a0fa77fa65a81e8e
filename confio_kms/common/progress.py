"""Progress of slow operations, for whoever watches (the commands print it on stderr).

The library names its slow steps with :func:`step`; nothing is reported unless a
caller listens with :func:`reported_to`. A context variable, not a parameter, so the
steps deep in a key kind or the rotation need no argument threaded through every layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Listener = Callable[[str], None]
_listener: ContextVar[Listener | None] = ContextVar("confio_kms_progress", default=None)


def step(message: str) -> None:
    """Report that ``message`` (one short line, no secrets) is starting."""
    listener = _listener.get()
    if listener is not None:
        listener(message)


@contextlib.contextmanager
def reported_to(listener: Listener | None) -> Iterator[None]:
    """Send the steps of the calls inside the block to ``listener`` (None: to nobody)."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
