"""Deterministic, seeded mini-batch sampling with resumable state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from .dataset import Dataset, one_hot

__all__ = ["BatchSampler", "batches"]

_STATE_KEYS = ("n", "batch_size", "seed", "shuffle", "drop_last", "epoch", "step")


class BatchSampler:
    """Endless stream of mini-batch index arrays, epoch by epoch, with resumable state.

    Each epoch visits every index once (in a random order when ``shuffle``). The order of
    epoch ``e`` depends only on ``(seed, e)`` (``np.random.default_rng([seed, e])``), so
    the whole state is a handful of integers: see :meth:`state_dict`.

    Parameters
    ----------
    n : int
        Number of samples (``len(dataset)``).
    batch_size : int
        Batch size ``B`` (``1 <= B``; larger than ``n`` gives one batch per epoch).
    seed : int, optional
        Non-negative seed (default 0).
    shuffle : bool, optional
        Permute the indices each epoch (default True); otherwise ``0..n-1`` in order.
    drop_last : bool, optional
        Skip the final short batch of each epoch when ``B`` does not divide ``n``
        (default False).

    Attributes
    ----------
    epoch : int
        Current epoch (0-based).
    step : int
        Index, within the current epoch, of the next batch to be returned.

    Examples
    --------
    >>> s = BatchSampler(10, 4, seed=1)
    >>> first = s.next_indices()          # shape (4,)
    >>> state = s.state_dict()            # plain ints
    >>> resumed = BatchSampler.from_state(state)
    >>> bool((resumed.next_indices() == s.next_indices()).all())
    True
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        n, batch_size, seed = int(n), int(batch_size), int(seed)
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if drop_last and batch_size > n:
            raise ValueError(f"drop_last with batch_size {batch_size} > n {n} yields no batches")
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.step = 0
        self._perm: np.ndarray | None = None
        self._perm_epoch = -1

    @property
    def batches_per_epoch(self) -> int:
        """Number of batches in one epoch."""
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Visiting order of epoch ``epoch``, shape ``(n,)``, int64 (a fresh array)."""
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch)])
        return rng.permutation(self.n).astype(np.int64, copy=False)

    def _order(self) -> np.ndarray:
        if self._perm is None or self._perm_epoch != self.epoch:
            self._perm = self.epoch_order(self.epoch)
            self._perm_epoch = self.epoch
        return self._perm

    def next_indices(self) -> np.ndarray:
        """Indices of the next batch, shape ``(B,)`` (or shorter at an epoch's end), int64.

        Advances :attr:`step`, rolling over to the next epoch after its last batch.
        """
        start = self.step * self.batch_size
        idx = self._order()[start : start + self.batch_size].copy()
        self.step += 1
        if self.step >= self.batches_per_epoch:
            self.epoch += 1
            self.step = 0
        return idx

    def next_batch(
        self, dataset: Dataset, *, onehot: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gather the next batch from ``dataset``.

        Returns
        -------
        x : np.ndarray, shape (B, D), float32
        labels : np.ndarray, shape (B,) int64, or (B, classes) float32 when ``onehot``
        """
        if len(dataset) != self.n:
            raise ValueError(f"sampler was built for n={self.n}, dataset has {len(dataset)} rows")
        x, labels = dataset.batch(self.next_indices())
        return x, (one_hot(labels, dataset.classes) if onehot else labels)

    def epoch_indices(self) -> Iterator[np.ndarray]:
        """Yield the remaining batches of the current epoch (then the epoch has advanced)."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.next_indices()

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        return self.next_indices()

    def state_dict(self) -> dict[str, int]:
        """The complete state as plain Python ints (booleans stored as 0/1).

        Keys: ``n, batch_size, seed, shuffle, drop_last, epoch, step``. Suitable for JSON
        or ``np.savez``; restore with :meth:`load_state_dict` or :meth:`from_state`.
        """
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "shuffle": int(self.shuffle),
            "drop_last": int(self.drop_last),
            "epoch": self.epoch,
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, int | np.integer | np.ndarray]) -> None:
        """Resume from :meth:`state_dict` output (values may be 0-d arrays, as from ``np.load``).

        Raises
        ------
        ValueError
            If a key is missing, the configuration (``n``, ``batch_size``, ``shuffle``,
            ``drop_last``) differs from this sampler's, or the position is out of range.
        """
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"sampler state lacks keys {missing}")
        s = {k: int(state[k]) for k in _STATE_KEYS}
        mine = self.state_dict()
        for k in ("n", "batch_size", "shuffle", "drop_last"):
            if s[k] != mine[k]:
                raise ValueError(f"sampler state has {k}={s[k]}, this sampler has {mine[k]}")
        if s["seed"] < 0 or s["epoch"] < 0 or not 0 <= s["step"] < self.batches_per_epoch:
            raise ValueError(f"invalid sampler position in state {s}")
        self.seed = s["seed"]
        self.epoch = s["epoch"]
        self.step = s["step"]
        self._perm = None
        self._perm_epoch = -1

    @classmethod
    def from_state(cls, state: Mapping[str, int | np.integer | np.ndarray]) -> BatchSampler:
        """A new sampler positioned as described by ``state`` (see :meth:`state_dict`)."""
        sampler = cls(
            int(state["n"]),
            int(state["batch_size"]),
            int(state["seed"]),
            shuffle=bool(int(state["shuffle"])),
            drop_last=bool(int(state["drop_last"])),
        )
        sampler.load_state_dict(state)
        return sampler

    def __repr__(self) -> str:
        return (
            f"BatchSampler(n={self.n}, batch_size={self.batch_size}, seed={self.seed}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, epoch={self.epoch}, "
            f"step={self.step})"
        )


def batches(
    dataset: Dataset,
    batch_size: int,
    rng: np.random.Generator | int | None = None,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    onehot: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate once over ``dataset`` in mini-batches.

    Parameters
    ----------
    dataset : Dataset
    batch_size : int
    rng : numpy.random.Generator or int or None
        Source of the permutation (a seed is passed to ``np.random.default_rng``). Must
        be given when ``shuffle``; a Generator is advanced, so successive epochs differ.
    shuffle : bool, optional
        Visit rows in a random order (default True).
    drop_last : bool, optional
        Skip the final short batch (default False).
    onehot : bool, optional
        Yield one-hot labels ``(B, classes)`` float32 instead of class indices.

    Yields
    ------
    x : np.ndarray, shape (B, D), float32
    labels : np.ndarray, shape (B,) int64 (or (B, classes) float32 when ``onehot``)
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(dataset)
    if shuffle:
        if rng is None:
            raise ValueError("rng (a Generator or an int seed) is required when shuffle=True")
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        order = gen.permutation(n)
    else:
        order = np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        x, labels = dataset.batch(order[start : start + batch_size])
        yield x, (one_hot(labels, dataset.classes) if onehot else labels)
