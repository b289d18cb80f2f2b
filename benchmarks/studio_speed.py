"""The studio's speed on this CPU: the issue-7 targets.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/studio_speed.py

- start: ``anyi2v studio examples/demo.json`` as a user runs it (a new process, the embedded daemon
  starting beside it) until the window has painted (target < 3 s), and until the shot's condition
  is on screen, with the longest pause of a 10 ms GUI timer in between (the renderer's libraries
  are imported on a thread meanwhile);
- scrub: one frame step of the playhead, the whole window repainted, with a result in the player
  (target < 16 ms);
- orbit: one orbit step of a 102,400-triangle mesh, from the camera move to the new condition on
  screen (the render runs on the worker thread; target < 150 ms), at the default 128x128 and at
  512x512.

Settings and data go to a temporary folder, not the user's.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "demo.json"


def child_start() -> None:
    """Runs in the measured process: the studio as ``anyi2v studio`` starts it, reporting when the
    window has painted and when the condition is shown, then closing."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from anyi2v.desktop.qt.app import run_studio
    from anyi2v.desktop.qt.window import StudioWindow

    app = QApplication(sys.argv[:1])
    ticks: list[float] = []  # a 10 ms timer: the longest pause between ticks is how long the GUI froze
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def shown() -> None:
        window = next(w for w in app.topLevelWidgets() if isinstance(w, StudioWindow))
        window.repaint()
        print("painted", flush=True)
        timer.start(10)

        def condition() -> None:
            if window.renders.conditions is None:
                QTimer.singleShot(5, condition)
                return
            window.condition_view.repaint()
            print("condition", flush=True)
            print(f"gap {max(b - a for a, b in itertools.pairwise(ticks)):.4f}", flush=True)
            window.close()

        condition()

    QTimer.singleShot(0, shown)
    run_studio(EXAMPLE)


def measure_start(home: Path, repeats: int) -> tuple[list[float], list[float], list[float]]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    painted, condition, gaps = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, __file__, "--child-start"], stdout=subprocess.PIPE, env=env,
                                   text=True)  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "painted":
                painted.append(time.perf_counter() - start)
            elif line.strip() == "condition":
                condition.append(time.perf_counter() - start)
            elif line.startswith("gap "):
                gaps.append(float(line.split()[1]))
        if process.wait(60) != 0 or len(condition) != len(painted):
            raise SystemExit(f"the studio child failed (exit {process.returncode})")
    return painted, condition, gaps


def hundred_k_mesh(folder: Path) -> Path:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=6, radius=0.45)  # 81,920 triangles
    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.08, major_sections=128, minor_sections=80)
    torus.apply_translation((0.0, 0.0, 0.4))
    mesh = trimesh.util.concatenate([sphere, torus])
    path = folder / "hundred_k.ply"
    mesh.export(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child-start", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if arguments.child_start:
        child_start()
        return

    home = Path(tempfile.mkdtemp(prefix="anyi2v-studio-bench-"))
    os.environ["XDG_CONFIG_HOME"], os.environ["XDG_DATA_HOME"] = str(home / "config"), str(home / "data")
    painted, condition, gaps = measure_start(home, arguments.repeats)

    from PySide6.QtWidgets import QApplication

    from anyi2v.desktop.qt.window import StudioWindow

    app = QApplication(sys.argv[:1])
    window = StudioWindow(start_daemon=False)
    window.show()

    def wait_for(ready: object, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; last message: {window.last_error}")
            app.processEvents()
            time.sleep(0.001)

    # Scrub: the demo with a 16-frame result in the player (side by side, boxes on).
    assert window.documents.open_path(EXAMPLE), window.last_error
    wait_for(lambda: window.renders.conditions is not None)
    rng = np.random.default_rng(0)
    n_frames = window.shot.output.n_frames
    window.player.set_shot(window.shot)
    window.player.set_frames([rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(n_frames)])
    window.compare_combo.setCurrentText("side by side")
    window.documents.selection.set({("torus", 15)})
    scrub = []
    for sweep in range(arguments.repeats):
        for frame in range(n_frames):
            start = time.perf_counter()
            window.timeline.sig_frame_requested.emit((frame + sweep) % n_frames)  # what a drag on the ruler sends
            window.repaint()
            scrub.append((time.perf_counter() - start) * 1000.0)

    # Orbit: a 102,400-triangle mesh; each step is a camera move awaited until its render is shown.
    mesh = hundred_k_mesh(home)
    orbit: dict[int, list[float]] = {}
    for size in (128, 512):
        assert window.documents.open_path(mesh), window.last_error
        window.editor.set_value(("output", "width"), size)
        window.editor.set_value(("output", "height"), size)
        wait_for(lambda: window.renders.conditions is not None and window.renders.render_worker.idle())
        shown: list[float] = []

        def record(*_: object, shown: list[float] = shown) -> None:
            shown.append(time.perf_counter())

        window.renders.sig_rendered.connect(record)
        camera = window.condition_view._orbit_start()
        assert camera is not None
        times = []
        for step in range(1 + 3 * arguments.repeats):  # the first is a warm-up
            camera = camera.orbit(7.0, 2.0)
            before = len(shown)
            start = time.perf_counter()
            window.editor.preview_camera(camera)
            wait_for(lambda before=before, shown=shown: len(shown) > before)
            app.processEvents()  # the condition view takes the image
            window.condition_view.repaint()
            if step:
                times.append((time.perf_counter() - start) * 1000.0)
        window.renders.sig_rendered.disconnect(record)
        orbit[size] = times
        window.documents.undo_stack.clear()
    window.shutdown()

    triangles = 102_400
    print(f"start to painted window   median {statistics.median(painted):6.2f} s   max {max(painted):.2f} s "
          f"(target < 3 s, {len(painted)} runs)")  # fmt: skip
    print(f"start to condition shown  median {statistics.median(condition):6.2f} s   max {max(condition):.2f} s")
    print(f"longest GUI pause between the two  median {statistics.median(gaps) * 1000:6.1f} ms  "
          f"max {max(gaps) * 1000:.1f} ms")  # fmt: skip
    p95 = np.percentile(scrub, 95)
    print(f"scrub one frame, repaint  median {statistics.median(scrub):6.2f} ms  p95 {p95:.2f} ms  "
          f"max {max(scrub):.2f} ms (target < 16 ms, {len(scrub)} steps)")  # fmt: skip
    for size, times in orbit.items():
        print(f"orbit step {triangles:,} triangles at {size}x{size}  median {statistics.median(times):6.2f} ms  "
              f"max {max(times):.2f} ms (target < 150 ms, {len(times)} steps)")  # fmt: skip


if __name__ == "__main__":
    main()
