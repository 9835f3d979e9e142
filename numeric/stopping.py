"""Stopping a training loop cleanly on Ctrl-C (SIGINT) and on SIGTERM.

SIGTERM is what ``kill``, batch schedulers and container runtimes send; it is handled
like Ctrl-C.  The first signal asks the loop to stop after the current iteration; a
second one stops the iteration at once (:class:`KeyboardInterrupt`).  Either way the
loop then writes its metrics, a checkpoint and the summary.  While a checkpoint or the
summary is being written (:meth:`StopFlag.deferred`), signals are only counted, so no
number of Ctrl-C can leave a run without its checkpoint; a second signal that arrived
during the write takes effect right after it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["HANDLED_SIGNALS", "StopFlag"]

#: Signals that stop a run cleanly.
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    """Context manager installing the handlers (main thread only; elsewhere a no-op).

    Attributes
    ----------
    requested : bool
        A stop was asked for.
    signum : int or None
        The first signal received.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._count = 0
        self._deferring = 0
        self._pending = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED_SIGNALS:
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):  # pragma: no cover - embedded interpreters
                    pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    @property
    def signal_name(self) -> str:
        """``"SIGINT"``, ``"SIGTERM"`` or ``""``."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: object) -> None:
        self._count += 1
        if self.signum is None:
            self.signum = signum
        if not self.requested:
            self.requested = True
            name = signal.Signals(signum).name
            print(
                f"\n{name}: stopping after this iteration (once more to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            return
        if self._deferring:
            self._pending = True
            print("writing the checkpoint; it will be complete", file=sys.stderr, flush=True)
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self, *, then_raise: bool = True) -> Iterator[None]:
        """Count signals instead of raising while the block runs.

        With ``then_raise``, a second signal that arrived meanwhile raises
        :class:`KeyboardInterrupt` once the block is done (not when it is left by an
        exception); without it (the final checkpoint) it is dropped.
        """
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._pending:
            self._pending = False
            if then_raise:
                raise KeyboardInterrupt
