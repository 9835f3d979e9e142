"""Subcommands and plug-ins that other layers register through entry points.

``numeric`` sits below ``derive``'s code generator and ``verify``'s checks, so it never
imports them.  They announce themselves in ``pyproject.toml`` instead::

    [project.entry-points."lowrank.commands"]
    derive = "derive.cli:register"
    verify = "verify.cli:register"

    [project.entry-points."lowrank.bench"]
    jax = "verify.bench_jax:register"

Each entry point names a function that takes no arguments and returns a plain dict (so
that the registering layer needs nothing from this one):

``help`` (str)
    One line for ``lowrank --help``.
``main`` (callable)
    ``main(argv) -> int`` for a command; for a plug-in, the object it provides.
``requires`` (tuple of str, optional)
    Top-level modules it needs at run time (e.g. ``("sympy",)``); when one is missing
    the command is unavailable, with a message naming the extra that provides it.
``extra`` (str, optional)
    That extra (default: the entry point's name, as for ``derive`` and ``verify``).

An entry point is loaded only when its command runs (``lowrank --help`` and the other
commands load none).  A module missing when it loads, or a required module missing when
it runs, makes the command unavailable with a message naming the extra to install.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = ["BENCH_GROUP", "BENCH_MODELS_GROUP", "COMMAND_GROUP", "Plugin", "discover"]

#: Entry-point group of ``lowrank`` subcommands.
COMMAND_GROUP = "lowrank.commands"
#: Entry-point group of extra ``lowrank bench`` routes.
BENCH_GROUP = "lowrank.bench"
#: Entry-point group of extra ``lowrank bench --model cnn|rnn`` routes.
BENCH_MODELS_GROUP = "lowrank.bench.models"
#: The distribution, for installation hints.
DISTRIBUTION = "lowrank-derivatives"


def _module_missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a broken or blocked package counts as missing
        return True


class Plugin:
    """One registered command or plug-in, loaded when first used.

    Loading imports the registering module (``derive.cli`` imports SymPy through its
    package), so listing the commands loads none of them.

    Attributes
    ----------
    name : str
    help : str
        One line for the command list (without loading the plug-in).
    """

    def __init__(self, ep: EntryPoint) -> None:
        self.name = ep.name
        self._ep = ep
        self._spec: dict[str, Any] | None = None
        self._error: Exception | None = None
        self.help = (
            f"commands of the {ep.module.split('.')[0]} layer (see: lowrank {ep.name} --help)"
        )

    def _load(self) -> dict[str, Any] | None:
        if self._spec is None and self._error is None:
            try:
                register: Callable[[], dict[str, Any]] = self._ep.load()
                self._spec = dict(register())
            except Exception as exc:  # a broken plug-in must not break the other commands
                self._error = exc
        return self._spec

    @property
    def main(self) -> Any:
        """``main(argv) -> int`` of a command, the provided object of a plug-in, or None."""
        spec = self._load()
        return None if spec is None else spec.get("main")

    def get(self, key: str, default: Any = None) -> Any:
        """Another entry of the plug-in's dict (e.g. ``"peers"`` of the bench plug-in)."""
        spec = self._load()
        return default if spec is None else spec.get(key, default)

    @property
    def requires(self) -> tuple[str, ...]:
        spec = self._load()
        return () if spec is None else tuple(spec.get("requires", ()))

    @property
    def extra(self) -> str:
        """The extra that provides what the plug-in needs (by default its name)."""
        spec = self._load()
        return str((spec or {}).get("extra") or self.name)

    def unavailable(self, what: str | None = None) -> str | None:
        """Why this cannot run here (one line), or None when it can."""
        what = what or f"`lowrank {self.name}`"
        spec = self._load()
        if spec is None:
            err = self._error
            if isinstance(err, ModuleNotFoundError):
                missing = [err.name or "?"]
            else:
                return f"{what} is not available in this installation ({type(err).__name__}: {err})"
        else:
            missing = [m for m in self.requires if _module_missing(m)]
        if missing:
            extra = self.extra
            return (
                f"{what} cannot run without the [{extra}] extra: pip install '{DISTRIBUTION}[{extra}]' "
                f"(or '.[{extra}]' in a source checkout); missing module: {', '.join(missing)}"
            )
        return None

    def run(self, argv: list[str]) -> int:
        """Run a command: its exit status, or 2 with a message when it is unavailable."""
        reason = self.unavailable()
        if reason is not None:
            print(f"error: {reason}", file=sys.stderr)
            return 2
        try:
            return int(self.main(list(argv)) or 0)
        except SystemExit as exc:  # argparse inside the command: usage errors, --help
            code = exc.code
            if code is None or isinstance(code, int):
                return int(code or 0)
            print(code, file=sys.stderr)
            return 1

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, {self._ep.value!r})"


def discover(
    group: str = COMMAND_GROUP, eps: Iterable[EntryPoint] | None = None
) -> dict[str, Plugin]:
    """The plug-ins registered in ``group``, by name (``eps``: given instead of the
    installed ones, for tests).  Nothing is loaded until used."""
    found = entry_points(group=group) if eps is None else eps
    return {ep.name: Plugin(ep) for ep in sorted(found, key=lambda e: e.name)}
