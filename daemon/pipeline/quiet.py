"""Library chatter silenced while models load, and given back as it was afterwards.

diffusers, transformers and huggingface_hub speak while weights load, and nothing they say there is for a
user: "There are modules in UNetMotionModel that should be kept in float32: []" on every ``.to(dtype)``, a
"Loading weights" tqdm bar per transformers model (drawn over the CLI's own progress), their own list of a
checkpoint's unused weights (said again, shorter, by ``model_formats.load_pretrained``), and peft's
"Already found a `peft_config` attribute" for each LoRA after the first (they are fused and unloaded).

:func:`quiet_libraries` lowers the three libraries' loggers to errors, turns their progress bars off and
ignores those Python warnings, for the ``with`` block only: errors still reach the user, our own loggers
(``anyi2v.*``) are untouched, and no setting outlives the load, so a caller that raised a library's
verbosity to debug something gets it back.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["IGNORED_WARNINGS", "quiet_libraries"]

IGNORED_WARNINGS = (r"Already found a `peft_config` attribute in the model",)
"""Python warnings (``warnings.warn`` message prefixes, as regular expressions) ignored while loading."""


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Within the block: diffusers and transformers log errors only, and they and huggingface_hub draw no
    progress bars; :data:`IGNORED_WARNINGS` are ignored. Every setting is restored on exit."""
    import diffusers.utils.logging as diffusers_logging

    # the module, not the class of the same name that huggingface_hub.utils exports
    hub_bars = importlib.import_module("huggingface_hub.utils.tqdm")
    import transformers.utils.logging as transformers_logging

    libraries = (diffusers_logging, transformers_logging)
    verbosities = [library.get_verbosity() for library in libraries]
    bars = [library.is_progress_bar_enabled() for library in libraries]
    hub_bars_were_off = hub_bars.are_progress_bars_disabled()
    for library in libraries:
        library.set_verbosity_error()
        library.disable_progress_bar()
    hub_bars.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            for message in IGNORED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for library, verbosity, bar in zip(libraries, verbosities, bars, strict=True):
            library.set_verbosity(verbosity)
            if bar:
                library.enable_progress_bar()
        if not hub_bars_were_off:
            hub_bars.enable_progress_bars()
