"""Parse an untrusted file in a child process, under a wall-clock and an address-space limit.

The child is a fresh interpreter (the ``spawn`` start method: forking a process that may run threads
can deadlock it). This module imports only the standard library and ``errors`` and ``limits`` (which
import nothing else), so the child caps the BLAS/OpenMP thread pools and sets ``RLIMIT_AS`` before
numpy, trimesh or Open3D is loaded; only then does it run the reader. It answers once over a one-way
pipe: the ``Asset``, or the ``AssetError`` the reader raised. The parent waits at most
``LoadLimits.timeout_s``, kills a child that overruns it (``LoadTimeout``), and reports a child that
died or ran out of memory as ``LoaderCrashed``. The answer is unpickled with an allow-list (our
geometry and error classes, numpy arrays), so a child that went wrong cannot make the parent run
anything.

Spawn re-imports the caller's ``__main__`` module in the child: keep a script's work under
``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import multiprocessing
import os
import pickle
import signal
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from .errors import AssetError, LoaderCrashed, LoadTimeout
from .limits import LoadLimits, Reader, UpAxis

if TYPE_CHECKING:
    from .geometry import Asset

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_GEOMETRY = "anyi2v.render.geometry"
_ERRORS = "anyi2v.render.errors"
_ALLOWED = {
    (_GEOMETRY, "Asset"),
    (_GEOMETRY, "MeshObject"),
    (_GEOMETRY, "PointObject"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_ERROR_NAMES = {
    "AssetError",
    "UnreadableAsset",
    "EmptyAsset",
    "NonFiniteAsset",
    "BadFaceIndices",
    "AssetTooLarge",
    "PathEscapes",
}


def load_in_child(path: str | os.PathLike[str], *, up_axis: UpAxis, limits: LoadLimits, reader: Reader) -> Asset:
    """Run ``reader(path, up_axis, limits)`` in a spawned child; see the module docstring."""
    file = os.fspath(path)
    reader_name = _qualified_name(reader)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main,
        args=(sender, file, up_axis, dataclasses.asdict(limits), reader_name),
        name="anyi2v-asset-loader",
        daemon=True,
    )
    deadline = time.monotonic() + limits.timeout_s
    try:
        process.start()
    except OSError as error:
        receiver.close()
        sender.close()
        raise LoaderCrashed(file, f"could not start the loader process: {error}") from error
    sender.close()  # the child holds its own copy: the pipe reads EOF once the child is gone
    payload: bytes | None = None
    state = "waiting"
    try:
        if receiver.poll(max(0.0, deadline - time.monotonic())):
            payload = receiver.recv_bytes()
            state = "answered"
        else:
            state = "timed out"
    except (EOFError, OSError):
        state = "died"
    finally:  # on a timeout or an interrupt the child is killed at once; otherwise it is on its way out
        receiver.close()
        exitcode = _stop(process, grace=5.0 if state in ("answered", "died") else 0.0)
    if state == "timed out":
        raise LoadTimeout(file, f"parsing took longer than {limits.timeout_s:g} s; the loader was stopped")
    if payload is None:
        raise LoaderCrashed(file, _describe_exit(exitcode), exitcode)
    kind, value = _read_answer(payload)
    if kind == "asset" and _is_asset(value):
        return value
    if kind == "error" and isinstance(value, AssetError):
        raise value
    if kind == "memory":
        limit = limits.memory_bytes / (1 << 30)
        raise LoaderCrashed(file, f"the loader ran out of memory (limit {limit:.3g} GiB)", exitcode)
    if kind == "failure":
        raise LoaderCrashed(file, f"the loader failed: {value}", exitcode)
    raise LoaderCrashed(file, "the loader sent an answer that is not an asset or an error", exitcode)


def _stop(process: multiprocessing.process.BaseProcess, grace: float) -> int | None:
    """Wait ``grace`` seconds for the child to exit, kill it if it has not, and return its exit code."""
    process.join(grace)
    if process.exitcode is None:
        process.kill()
        process.join()
    exitcode = process.exitcode
    process.close()
    return exitcode


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        hint = "; the system may have run out of memory" if -exitcode == getattr(signal, "SIGKILL", 9) else ""
        return f"the loader process was killed by signal {-exitcode} ({name}){hint}"
    return f"the loader process exited with code {exitcode} without answering"


def _qualified_name(reader: Reader) -> str:
    module, qualname = getattr(reader, "__module__", None), getattr(reader, "__qualname__", "")
    if not module or not qualname or "<" in qualname:
        raise ValueError(f"reader must be a module-level function (the child imports it by name), got {reader!r}")
    return f"{module}:{qualname}"


class _AnswerUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == _ERRORS and name in _ERROR_NAMES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the loader's answer may not contain {module}.{name}")


def _read_answer(payload: bytes) -> tuple[str, Any]:
    try:
        answer = _AnswerUnpickler(io.BytesIO(payload)).load()
    except Exception:  # a malformed answer is reported like any other broken child
        return ("malformed", None)
    if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str)):
        return ("malformed", None)
    return (answer[0], answer[1])


def _is_asset(value: object) -> TypeGuard[Asset]:
    """The child's asset has the types and dtypes ``geometry`` promises."""
    import numpy as np

    from .geometry import Asset, MeshObject, PointObject

    if not isinstance(value, Asset) or not isinstance(value.source, str):
        return False
    notes: object = value.warnings
    if not (isinstance(notes, tuple) and all(isinstance(note, str) for note in notes)):
        return False
    objects: tuple[object, ...] = value.objects  # checked as if unknown: it came from another process
    for item in objects:
        if isinstance(item, MeshObject):
            arrays = [(item.vertices, np.float64), (item.faces, np.int64), (item.vertex_colors, np.float64)]
        elif isinstance(item, PointObject):
            arrays = [(item.points, np.float64), (item.colors, np.float64)]
        else:
            return False
        for array, dtype in arrays:
            if array is not None and not (isinstance(array, np.ndarray) and array.dtype == dtype and array.ndim == 2):
                return False
    return True


def _child_main(sender: Connection, path: str, up_axis: str, limits: dict[str, Any], reader_name: str) -> None:
    """The child: cap threads and memory before heavy imports, parse, answer once."""
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    try:
        _limit_memory(int(limits["memory_bytes"]))
        payload = _parse_and_pickle(path, up_axis, limits, reader_name)
    except MemoryError:
        payload = pickle.dumps(("memory", None))
    except BaseException as error:
        text = " ".join(str(error).split())
        text = text if len(text) <= 400 else f"{text[:200]} ... {text[-200:]}"
        payload = pickle.dumps(("failure", f"{type(error).__name__}: {text}"))
    sender.send_bytes(payload)
    sender.close()


def _parse_and_pickle(path: str, up_axis: str, limits: dict[str, Any], reader_name: str) -> bytes:
    module_name, _, qualname = reader_name.partition(":")
    reader: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        reader = getattr(reader, part)
    try:
        answer: tuple[str, Any] = ("asset", reader(Path(path), up_axis, LoadLimits(**limits)))
    except AssetError as error:
        answer = ("error", error)
    return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)


def _limit_memory(limit: int) -> None:
    """Cap this process's address space (POSIX; silently nothing where RLIMIT_AS is not available)."""
    try:
        import resource
    except ImportError:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    with contextlib.suppress(ValueError, OSError):  # e.g. macOS, which does not enforce RLIMIT_AS anyway
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
