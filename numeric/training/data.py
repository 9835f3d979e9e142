"""The data of a training run: the splits a config names, their checks before anything
is written, their record in ``config.json``, and where the network and the batches live
(the NumPy host, or JAX devices: :func:`place`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numeric.data import Dataset, load_dataset
from numeric.network import Network
from numeric.training.config import TrainConfig
from numeric.training.progress import Log
from numeric.training.rundir import RunDirError

__all__ = [
    "check_batch",
    "check_same_data",
    "config_record",
    "data_line",
    "device_count",
    "load_test_data",
    "load_training_data",
    "place",
    "run_data",
]


def load_training_data(config: TrainConfig) -> Dataset:
    """The training split named by ``config`` (raises ``DatasetError`` when absent)."""
    return load_dataset(config.dataset, config.data_dir, "train")


def load_test_data(config: TrainConfig) -> Dataset:
    """The test split named by ``config`` (raises ``DatasetError`` when absent)."""
    return load_dataset(config.dataset, config.data_dir, "test")


def data_line(data: Dataset) -> str:
    """One line naming the data a run loaded: split, name, size and files."""
    where = ", ".join(data.files) if data.files else data.source
    return f"{data.split} data: {data.name}, {len(data):,} images, from {where}"


def run_data(
    config: TrainConfig, dataset: Dataset | None, test_dataset: Dataset | None, log: Log | None
) -> tuple[Dataset, Dataset | None]:
    """The training and test data of a run: given, or loaded by the config's name.

    Given training data without test data means no evaluation.  Both are checked before
    anything is written.
    """
    if dataset is None:
        dataset = load_training_data(config)
        if test_dataset is None and config.eval_every > 0:
            test_dataset = load_test_data(config)
        if log is not None:
            for d in (dataset, test_dataset):
                if d is not None:
                    log(data_line(d))
    if len(dataset) == 0:
        raise ValueError(f"{dataset.source}: the training data hold no images")
    if test_dataset is not None:
        if len(test_dataset) == 0:
            raise ValueError(f"{test_dataset.source}: the test data hold no images")
        if (test_dataset.dim, test_dataset.classes) != (dataset.dim, dataset.classes):
            raise ValueError(
                f"test data ({test_dataset.dim} inputs, {test_dataset.classes} classes) do "
                f"not match the training data ({dataset.dim}, {dataset.classes})"
            )
    return dataset, test_dataset


def config_record(config: TrainConfig, data: Dataset, test: Dataset | None) -> dict[str, Any]:
    """The content of ``config.json``: the config and the data it loaded."""
    return {
        "config": config.to_json(),
        "data": {"train": data.describe(), "test": None if test is None else test.describe()},
        "dataset": repr(data),
    }


def check_same_data(record: dict[str, Any], data: Dataset, test: Dataset | None) -> None:
    """``ValueError`` when the data a resumed run loaded are not those its ``config.json``
    recorded (same files, other contents; or other files after a move)."""
    saved = record.get("data") or {}
    for split, loaded in (("train", data), ("test", test)):
        want = (saved.get(split) or {}).get("digest")
        if want is None or loaded is None:
            continue  # a run recorded before digests, or without evaluation
        if loaded.digest() != want:
            where = ", ".join(loaded.files) or loaded.source
            raise ValueError(
                f"the {split} data loaded now ({where}) differ from those the run was trained "
                "on (config.json's digest); point --data-dir at the original files"
            )


def _jax_backend():
    try:
        from numeric import jax_backend as jb
    except ImportError as exc:
        raise RunDirError(
            "--backend jax needs JAX: pip install 'lowrank-derivatives[jax]' "
            f"(or '.[jax]' in a source checkout); missing module: {exc.name}"
        ) from None
    return jb


def device_count(config: TrainConfig) -> int:
    """The devices a run splits each batch over: 1 on NumPy; on JAX ``config.devices``,
    which must divide the batch, or for 0 ("all") the most local devices that do.

    Raises ``ValueError`` (one line) for a count that is not there or does not divide.
    """
    if config.backend != "jax":
        return 1
    avail = _jax_backend().local_device_count()
    batch = config.batch_size
    if config.devices == 0:
        return max(n for n in range(1, avail + 1) if batch % n == 0)
    if config.devices > avail:
        raise ValueError(f"--devices {config.devices}: this host has {avail} JAX devices")
    if batch % config.devices:
        raise ValueError(
            f"--devices {config.devices} does not divide the batch of {batch}; choose a "
            "divisor of the batch size (or 0: the most devices that divide it)"
        )
    return config.devices


def check_batch(config: TrainConfig, data: Dataset) -> None:
    """``ValueError`` when a batch is larger than the training data."""
    if config.batch_size > len(data):
        raise ValueError(
            f"--batch-size {config.batch_size} is larger than the {len(data):,} training "
            f"images of {data.name}"
        )


def place(config: TrainConfig, net: Network) -> tuple[Network, Callable | None]:
    """The network on the run's backend, and how each batch gets there.

    Returns
    -------
    network : Network
        ``net`` itself (NumPy), or its arrays replicated on the JAX devices.
    transfer : callable or None
        ``transfer(x, y)`` puts a batch (x of shape (B, ...), y of shape (B,)) on the
        devices, split over them along the batch axis; None on NumPy.
    """
    if config.backend != "jax":
        return net, None
    jb = _jax_backend()
    if config.dtype == "float64":
        jb.enable_x64()
    sharding = jb.batch_sharding(device_count(config))
    placed = jb.replicate(jb.to_jax(net), sharding)

    def transfer(x, y):
        return jb.device_array(x, sharding), jb.device_array(y, sharding)

    return placed, transfer
