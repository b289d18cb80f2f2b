"""After a render error nothing says the condition is still rendering: not the condition view (which
says why instead), not the transport bar of a generation whose condition failed, not the status bar."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from tests.conftest import EXAMPLES
from tests.desktop.test_widgets import connect_fake

WAIT_MS = 30_000


class FailingRenderer:
    """Stands in for ConditionRenderer: every render fails (as a broken mesh does), until ``fail`` is off."""

    def __init__(self) -> None:
        self.fail = True

    def render(self, shot, base_dir):
        if self.fail:
            raise ValueError("the mesh has no faces")
        return SimpleNamespace(image=np.full((128, 128, 3), 0.5), object_boxes={}, tracks=shot.tracks, warnings=())


def drawn_texts(monkeypatch, widget) -> list[str]:
    """The texts ``widget`` draws when it paints now."""
    from PySide6.QtGui import QPainter

    from anyi2v.desktop.qt import condition_view

    texts: list[str] = []

    class RecordingPainter(QPainter):
        def drawText(self, *arguments):  # noqa: N802 (Qt's name)
            texts.append(str(arguments[-1]))
            super().drawText(*arguments)

    monkeypatch.setattr(condition_view, "QPainter", RecordingPainter)
    widget.grab()
    return texts


def use_renderer(window, renderer) -> None:
    window.renders.renderer = renderer
    window.jobs.renderer = renderer  # the jobs render the condition they send with the same one


def test_a_failed_render_leaves_no_rendering_status_and_says_why(qtbot, window, monkeypatch):
    renderer = FailingRenderer()
    use_renderer(window, renderer)
    assert window.documents.open_path(EXAMPLES / "demo.json"), window.last_error
    qtbot.waitUntil(lambda: "could not be rendered" in window.last_error, timeout=WAIT_MS)
    view = window.condition_view
    qtbot.waitUntil(lambda: not view.busy, timeout=WAIT_MS)
    texts = drawn_texts(monkeypatch, view)
    assert not [text for text in texts if "rendering" in text.lower()], texts
    assert any("could not be rendered: the mesh has no faces" in text for text in texts), texts
    assert "Rendering" not in window.statusBar().currentMessage()

    session = connect_fake(window)  # a generation renders the condition it sends: that fails too
    window.generate()
    qtbot.waitUntil(lambda: window.jobs.job is not None and window.jobs.job.finished, timeout=WAIT_MS)
    qtbot.wait(50)
    assert session.jobs == []
    progress = window.transport.progress.format()
    assert progress.startswith("Failed:"), progress
    assert "Rendering" not in progress
    assert "Rendering" not in window.statusBar().currentMessage()

    renderer.fail = False  # the next render works: the image replaces the message
    assert window.documents.open_path(EXAMPLES / "demo.json"), window.last_error
    qtbot.waitUntil(lambda: window.renders.conditions is not None and not view.busy, timeout=WAIT_MS)
    assert view.image is not None
    assert not [text for text in drawn_texts(monkeypatch, view) if "could not be rendered" in text]


def test_a_failed_render_after_a_good_one_says_the_image_is_the_last_good_one(qtbot, window, monkeypatch):
    renderer = FailingRenderer()
    renderer.fail = False
    use_renderer(window, renderer)
    assert window.documents.open_path(EXAMPLES / "demo.json"), window.last_error
    view = window.condition_view
    qtbot.waitUntil(lambda: window.renders.conditions is not None and not view.busy, timeout=WAIT_MS)
    renderer.fail = True
    window.editor.set_value(("output", "width"), 192)  # a change of what the condition depends on: rendered again
    qtbot.waitUntil(lambda: "could not be rendered" in window.last_error and not view.busy, timeout=WAIT_MS)
    texts = drawn_texts(monkeypatch, view)
    assert not [text for text in texts if "rendering" in text.lower()], texts
    assert any("not rendered" in text for text in texts), texts
