"""Small widget constructors shared by the studio's panels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMenu, QToolButton, QWidget


def tool_button(text: str, *, checked: bool | None = None) -> QToolButton:
    """A tool button with a label; checkable, and in that state, when ``checked`` is given."""
    button = QToolButton()
    button.setText(text)
    if checked is not None:
        button.setCheckable(True)
        button.setChecked(checked)
    return button


def add_action(
    owner: QWidget, menu: QMenu, text: str, slot: Callable[[], Any], shortcut: Any = None, tip: str = ""
) -> QAction:
    """A menu item that calls ``slot``; its ``shortcut`` works anywhere in ``owner``'s window."""
    action = QAction(text, owner)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    action.setStatusTip(tip)
    action.triggered.connect(lambda _=False: slot())
    menu.addAction(action)
    owner.addAction(action)
    return action


def add_dock(
    owner: QMainWindow, area: Qt.DockWidgetArea, title: str, name: str, widget: QWidget, *,
    fixed: bool = False, min_width: int = 0,
) -> QDockWidget:  # fmt: skip
    """``widget`` in a dock of ``owner``; a ``fixed`` one cannot be moved, floated or closed."""
    dock = QDockWidget(title, owner)
    dock.setObjectName(name)
    dock.setWidget(widget)
    if fixed:
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
    if min_width:
        dock.setMinimumWidth(min_width)
    owner.addDockWidget(area, dock)
    return dock


def fill_menu(menu: QMenu, items: list[tuple[str, Callable[[], Any]]], tip: str = "") -> None:
    """Replace ``menu``'s items by ``items`` (text, slot); an empty menu is disabled."""
    menu.clear()
    for text, slot in items:
        menu.addAction(text, slot).setToolTip(tip)
    menu.setEnabled(bool(items))
