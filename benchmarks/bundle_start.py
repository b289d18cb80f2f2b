"""The desktop bundle's size and how long it takes to show its window with a shot open.

    python packaging/desktop/build.py --flavour remote --out build/desktop
    python benchmarks/bundle_start.py build/desktop/remote/anyi2v-studio [--runs 5]

Each run starts the bundle offscreen with examples/demo.json and an unreachable daemon, and times
from the start of the process to the studio's ready line (`--report-ready`: written on the event
loop's first turn after the window is shown); the same for the studio run from this checkout's
environment, interleaved, as the baseline. Prints the folder's size, its five largest parts, the median
and best start of each, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def start_seconds(launcher: list[str], shot: Path, timeout: float = 120.0) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        ready = Path(scratch) / "ready.json"
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": scratch, "XDG_DATA_HOME": scratch,
               "XDG_CONFIG_HOME": scratch}  # fmt: skip
        started = time.perf_counter()
        process = subprocess.Popen(
            [*launcher, "studio", str(shot), "--daemon", "tcp://127.0.0.1:9", "--report-ready", str(ready)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            while not (ready.exists() and ready.read_text().endswith("\n")):
                if process.poll() is not None:
                    raise RuntimeError(f"the bundle exited {process.returncode} before its window was shown")
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"no window within {timeout:.0f} s")
                time.sleep(0.005)
            return time.perf_counter() - started
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the bundle folder (holding the anyi2v-studio executable)")
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    bundle = arguments.bundle.resolve()
    flavour = (bundle / "FLAVOUR").read_text().strip() if (bundle / "FLAVOUR").exists() else "?"
    print(f"bundle {bundle} ({flavour}): {size_mib(bundle):.0f} MiB")
    internal = bundle / "_internal"
    parts = sorted(
        ((size_mib(p) if p.is_dir() else p.stat().st_size / 2**20), p.name)
        for p in internal.iterdir()
        if not p.is_symlink()  # PyInstaller links some libraries to the top: counted where they are
    )
    print("largest parts: " + ", ".join(f"{name} {mib:.0f} MiB" for mib, name in reversed(parts[-5:])))
    shot = REPO / "examples" / "demo.json"
    launchers = {"bundle": [str(bundle / "anyi2v-studio")], "source": [sys.executable, "-m", "anyi2v.cli"]}
    times: dict[str, list[float]] = {name: [] for name in launchers}
    for _ in range(arguments.runs):  # interleaved, so that both see the same machine
        for name, launcher in launchers.items():
            times[name].append(start_seconds(launcher, shot))
    for name, runs in times.items():
        print(f"{name}: window shown with a shot open: median {statistics.median(runs):.2f} s, best {min(runs):.2f} s"
              f" ({', '.join(f'{t:.2f}' for t in runs)})")  # fmt: skip
    print(f"bundle / source, medians: {statistics.median(times['bundle']) / statistics.median(times['source']):.2f}")


if __name__ == "__main__":
    main()
