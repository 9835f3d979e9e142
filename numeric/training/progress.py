"""What a running training tells its user: one-line notes (:data:`Log`, by default on
standard error) and a progress bar with the loss and ``alpha`` (:class:`Progress`, tqdm
when installed)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from numeric.cr import StepInfo

__all__ = ["Log", "Progress", "stderr_log"]

#: Receives one-line notes: the data loaded, repairs, skipped checkpoints.
Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    """The default :data:`Log`: the line on standard error, flushed."""
    print(message, file=sys.stderr, flush=True)


class Progress:
    """A progress bar of ``total`` iterations starting at ``initial``, refreshed every 25
    (a no-op when not ``enabled`` or without tqdm)."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str) -> None:
        self.bar = None
        self.pending = 0
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit="it", mininterval=0.5, leave=True
            )

    def update(self, info: StepInfo) -> None:
        if self.bar is None:
            return
        self.pending += 1
        if self.pending >= 25:
            self.bar.set_postfix_str(f"loss={info.loss:.4f} alpha={info.alpha:.3g}", refresh=False)
            self.bar.update(self.pending)
            self.pending = 0

    def close(self) -> None:
        if self.bar is not None:
            if self.pending:
                self.bar.update(self.pending)
            self.bar.close()
