"""The open shot as a controller: the :class:`ShotDocument`, the undo stack of its edits, the key
selection that goes with them, new / open / save / save as / recent, and when to ask before unsaved
changes are lost.

Views never change the shot: they ask, an :class:`Edit` is pushed on the stack, and
``sig_shot_shown`` tells every view what to draw. Questions that need a dialog (keep the changes?
where to save?) are callables the window sets, so tests answer them without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack
from PySide6.QtWidgets import QMessageBox

from anyi2v.desktop.models import edits
from anyi2v.desktop.models.document import ShotDocument, rebase_paths
from anyi2v.desktop.models.edits import Edit, EditError
from anyi2v.desktop.models.files import StudioConfig, shot_for_file
from anyi2v.desktop.models.timeline import KeySelection
from anyi2v.shared.errors import ShotError
from anyi2v.shared.shot import Shot


class ShotCommand(QUndoCommand):
    """An :class:`Edit` on the undo stack, with the key selection before and after it. Edits with the
    same ``merge_key`` in quick succession (typing a prompt, wheel zoom steps) merge into one, keeping
    the first ``before``; one that ends where it began is dropped."""

    MERGE_SECONDS = 1.5

    def __init__(self, documents: DocumentController, edit: Edit, merge_key: str | None = None) -> None:
        super().__init__(edit.text)
        self.documents, self.edit, self.merge_key = documents, edit, merge_key
        self.selection_before = documents.selection.keys
        self.selection_after: frozenset[edits.KeyRef] | None = None  # known once it has been undone
        self.last_change = time.monotonic()

    def id(self) -> int:
        return hash(self.merge_key) & 0x7FFFFFFF if self.merge_key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802
        if not isinstance(other, ShotCommand) or other.merge_key != self.merge_key or self.merge_key is None:
            return False
        if other.last_change - self.last_change > self.MERGE_SECONDS:
            return False  # a separate change, made later: its own undo step
        self.edit = Edit(self.edit.text, self.edit.before, other.edit.after)
        self.last_change = other.last_change
        self.setObsolete(self.edit.before == self.edit.after)
        return True

    def rebase(self, old_base: Path, new_base: Path) -> None:
        """The shot was saved to another folder: keep this edit's relative paths pointing at the same files."""
        self.edit = Edit(self.edit.text, rebase_paths(self.edit.before, old_base, new_base),
                         rebase_paths(self.edit.after, old_base, new_base))  # fmt: skip

    def redo(self) -> None:
        self.documents.show(self.edit.after)
        if self.selection_after is not None:
            self.documents.selection.set(self.selection_after)

    def undo(self) -> None:
        self.selection_after = self.documents.selection.keys
        self.documents.show(self.edit.before)
        self.documents.selection.set(self.selection_before)  # not a key that only shares a frame with it


class DocumentController(QObject):
    """Owns the open :class:`ShotDocument` (None when no shot is open), its ``undo_stack``, the key
    ``selection`` and the studio's ``config`` (recent files, connection), saved to ``config_path``."""

    #: another shot was opened, or none (before it is shown): everything about the old one is dropped
    sig_document_changed = Signal(object)
    #: the shot every view shows now (after an edit, an undo, an open), or None
    sig_shot_shown = Signal(object)
    #: an edit that changed nothing: views that showed a value of their own show the shot's again
    sig_edit_unchanged = Signal(object)
    sig_title_changed = Signal(str)
    #: the shot was written: the file, and the file it had before (None: it was untitled)
    sig_saved = Signal(object, object)
    sig_recent_changed = Signal(object)
    #: asked before a save or a close: views commit what is typed but not yet sent as an edit
    sig_commit_pending_requested = Signal()
    sig_error = Signal(str)
    sig_info = Signal(str)

    def __init__(self, config_path: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.config_path = config_path
        self.config = StudioConfig.load(config_path)
        self.document: ShotDocument | None = None
        self.undo_stack = QUndoStack(self)
        self.selection = KeySelection()
        #: Save / Discard / Cancel before unsaved changes are lost (the window asks with a dialog)
        self.ask_unsaved: Callable[[str], QMessageBox.StandardButton] = lambda _: QMessageBox.StandardButton.Cancel
        #: where to save, offered a starting path; None when the user cancels (the window asks with a dialog)
        self.ask_save_path: Callable[[Path], Path | None] = lambda start: None
        self.undo_stack.cleanChanged.connect(self._clean_changed)

    @property
    def shot(self) -> Shot | None:
        return self.document.shot if self.document is not None else None

    @property
    def title(self) -> str:
        return self.document.title if self.document is not None else "no shot"

    # The shot and its edits -------------------------------------------------------------------

    def set_document(self, document: ShotDocument | None) -> None:
        """Make ``document`` the open one (None: no shot), with an empty undo stack."""
        self.document = document
        self.undo_stack.clear()
        self.selection.set(())
        self.sig_document_changed.emit(document)
        if document is not None:
            document.changed.connect(lambda _: self._announce_title())
        self.show(document.shot if document is not None else None)
        self.undo_stack.setClean()
        self._announce_title()

    def show(self, shot: Shot | None) -> None:
        """Make ``shot`` the document's value (after an edit, an undo or an open) and show it."""
        if self.document is not None and shot is not None:
            self.document.replace(shot)
        self.selection.prune(shot) if shot is not None else self.selection.set(())
        self.sig_shot_shown.emit(shot)
        self._announce_title()

    def apply(self, text: str, change: Callable[[Shot], Shot], merge_key: str | None = None) -> bool:
        """Run an edit on the current shot and push it on the undo stack; a refused edit is explained
        (``sig_error``) and the views go back to the shot as it is."""
        if self.shot is None:
            return False
        before = self.shot
        try:
            after = change(before)
        except EditError as error:
            self.sig_error.emit(f"{text}: {error}")
            self.show(before)
            return False
        if after == before:
            self.sig_edit_unchanged.emit(before)  # a field the user left as it was shows the shot's value again
            return False
        self.undo_stack.push(ShotCommand(self, Edit(text, before, after), merge_key))
        return True

    def _clean_changed(self, _clean: bool) -> None:
        self._announce_title()

    def _announce_title(self) -> None:
        self.sig_title_changed.emit(self.title)

    # Files ------------------------------------------------------------------------------------

    def unsaved_changes(self) -> str | None:
        """The name of the open shot when closing it would lose changes (None when nothing would be lost)."""
        self.sig_commit_pending_requested.emit()
        if (
            self.document is None
            or not self.document.dirty
            or (self.document.path is None and not self.undo_stack.count())
        ):
            return None
        return self.document.title.rstrip(" *")

    def confirm_discard(self) -> bool:
        """Ask before losing unsaved changes; True when it is fine to go on."""
        name = self.unsaved_changes()
        if name is None:
            return True
        answer = self.ask_unsaved(f"Save the changes to {name}?")
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def new_shot(self) -> None:
        if self.confirm_discard():
            self.set_document(None)

    def open_path(self, path: Path) -> bool:
        """Open a shot file, or start a new shot around a mesh, point cloud or image."""
        if not path.exists():
            if str(path.resolve()) in self.config.recent:
                self.config.recent.remove(str(path.resolve()))
                self.save_config()
            self.sig_error.emit(f"{path} no longer exists (moved or deleted?); it is off the recent list")
            return False
        if not self.confirm_discard():
            return False
        try:
            if path.suffix.lower() == ".json":
                document = ShotDocument.open(path)
                self.config.add_recent(path)
                self.save_config()
            else:
                document = ShotDocument(shot_for_file(path), None, path.parent)
        except ShotError as error:
            self.sig_error.emit(f"{path.name} is not a valid shot: {error.problems[0]}" + (
                f" (and {len(error.problems) - 1} more)" if len(error.problems) > 1 else ""))  # fmt: skip
            return False
        except (OSError, ValueError) as error:
            self.sig_error.emit(f"Cannot open {path}: {error}")
            return False
        self.set_document(document)
        self.sig_info.emit(f"Opened {path}")
        return True

    def save(self) -> bool:
        self.sig_commit_pending_requested.emit()
        if self.document is None:
            return False
        if self.document.path is None:
            return self.save_as()
        return self.save_to(self.document.path)

    def save_as(self) -> bool:
        self.sig_commit_pending_requested.emit()
        if self.document is None:
            return False
        path = self.ask_save_path(self.document.base_dir / "shot.json")
        return self.save_to(path) if path is not None else False

    def save_to(self, path: Path) -> bool:
        """Write the shot to ``path`` (``.json`` added when it has no suffix); relative paths are
        rebased, in the shot and in every shot the undo stack holds."""
        document = self.document
        assert document is not None
        old_base, old_path = document.base_dir, document.path
        try:
            written = document.save(path if path.suffix else path.with_suffix(".json"))
        except (OSError, ValueError, ShotError) as error:
            self.sig_error.emit(f"Not saved: {error}")
            return False
        if document.base_dir != old_base:
            # relative paths now start from the new folder: every shot the undo stack holds moves too
            for index in range(self.undo_stack.count()):
                command = self.undo_stack.command(index)
                if isinstance(command, ShotCommand):
                    command.rebase(old_base, document.base_dir)
            self.show(document.shot)
        self.undo_stack.setClean()
        self.config.add_recent(written)
        self.save_config()
        self._announce_title()
        self.sig_saved.emit(written, old_path)
        self.sig_info.emit(f"Saved {written}")
        return True

    def save_config(self) -> None:
        """Write the studio's config (recent files, connection); the recent list is announced."""
        try:
            self.config.save(self.config_path)
        except OSError as error:
            self.sig_error.emit(f"Settings not saved ({self.config_path}): {error}")
        self.sig_recent_changed.emit(list(self.config.recent))
