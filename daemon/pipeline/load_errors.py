"""The error of model loading, how its messages list names, and how they name the loader's options.

Every module of loading raises :class:`ModelLoadError`; it lives here, imported by all and importing
none of them. A message that tells the user what to pass says it in their words: Python keywords for
:func:`~anyi2v.daemon.pipeline.assembly.load_models` called from Python (:data:`PYTHON_OPTIONS`), the
flags of ``anyi2v animate`` and ``anyi2v daemon`` for a command (:data:`CLI_OPTIONS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CLI_OPTIONS", "PYTHON_OPTIONS", "ModelLoadError", "OptionNames", "first_few"]


@dataclass(frozen=True)
class OptionNames:
    """How loading messages name its options; ``allow_network`` is None where there is no such option,
    ``before_value`` what comes between an option and its value (``tokenizer=<folder>``, ``--tokenizer DIR``)."""

    motion_adapter: str
    tokenizer: str
    allow_network: str | None
    before_value: str = ""
    motion_adapter_value: str = "<a diffusers MotionAdapter folder, or an AnimateDiff motion module .safetensors/.ckpt>"

    def given(self, option: str, value: str) -> str:
        """``option`` with ``value``, as the user writes them."""
        return f"{option}{self.before_value}{value}"


PYTHON_OPTIONS = OptionNames(
    motion_adapter="motion_adapter=", tokenizer="tokenizer=", allow_network="allow_network=True"
)
CLI_OPTIONS = OptionNames(
    motion_adapter="--motion-module",
    tokenizer="--tokenizer",
    allow_network=None,
    before_value=" ",
    motion_adapter_value="<a motion module's name in the library (anyi2v models), a MotionAdapter folder or a file>",
)


class ModelLoadError(ValueError):
    """Weights could not be loaded; the message names the file or folder and what was expected."""


def first_few(keys: Iterable[object], count: int = 5) -> str:
    """The first ``count`` of ``keys`` for a message, comma separated, with an ellipsis when there are more."""
    listed = [str(key) for key in keys]
    return ", ".join(listed[:count]) + (", …" if len(listed) > count else "")
