"""The studio's Edit and Playback menus: items (with their shortcuts) that call a controller or the
playhead directly. The File and Generate menus, which open dialogs, stay with the window."""

from __future__ import annotations

from functools import partial

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from anyi2v.desktop.models.timeline import Playback
from anyi2v.shared.curves import INTERPOLATIONS

from .document_controller import DocumentController
from .edit_controller import EditController
from .widgets import add_action


def add_edit_menu(window: QMainWindow, documents: DocumentController, editor: EditController) -> QMenu:
    """Undo, redo and the key edits; returns the (empty, disabled) "New track from scene object" menu."""
    edit_menu = window.menuBar().addMenu("&Edit")
    undo = documents.undo_stack.createUndoAction(window, "&Undo")
    undo.setShortcut(QKeySequence.StandardKey.Undo)
    redo = documents.undo_stack.createRedoAction(window, "&Redo")
    redo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Redo), QKeySequence("Ctrl+Shift+Z")])
    for action in (undo, redo):
        edit_menu.addAction(action)
        window.addAction(action)
    edit_menu.addSeparator()
    add_action(window, edit_menu, "Insert key", editor.insert_key, "I", "Key the selected track at the current frame")
    add_action(window, edit_menu, "Copy keys", editor.copy_keys, QKeySequence.StandardKey.Copy)
    add_action(window, edit_menu, "Paste keys", editor.paste_keys, QKeySequence.StandardKey.Paste)
    add_action(window, edit_menu, "Delete keys", editor.delete_selected, QKeySequence.StandardKey.Delete,
               "Delete the selected keys (or the selected track when no key is selected)")  # fmt: skip
    objects_menu = edit_menu.addMenu("New track from scene object")
    objects_menu.setToolTipsVisible(True)
    objects_menu.setEnabled(False)
    interpolation = edit_menu.addMenu("Interpolation")
    for name in INTERPOLATIONS:
        add_action(window, interpolation, name.capitalize(), partial(editor.interpolate_selected, name))
    return objects_menu


def add_playback_menu(window: QMainWindow, playback: Playback) -> None:
    play_menu = window.menuBar().addMenu("&Playback")
    add_action(window, play_menu, "Play / pause", playback.toggle, "Space")
    add_action(window, play_menu, "Next frame", lambda: playback.step(1), "Right")
    add_action(window, play_menu, "Previous frame", lambda: playback.step(-1), "Left")
    add_action(window, play_menu, "First frame", lambda: playback.set_frame(0), "Home")
    add_action(window, play_menu, "Last frame", lambda: playback.set_frame(playback.n_frames - 1), "End")
