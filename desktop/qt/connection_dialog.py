"""Choose the daemon: the embedded local one (optionally with a model of your own) or a remote one by
address and CURVE keys."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from anyi2v.desktop.models.connection import ConnectionSettings


class ConnectionDialog(QDialog):
    def __init__(self, current: ConnectionSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to a daemon")
        layout = QVBoxLayout(self)
        self.local = QRadioButton("Local: start a daemon on this machine")
        self.local.setChecked(current.mode == "local")
        self.remote = QRadioButton("Remote: a daemon on another machine")
        self.remote.setChecked(current.mode == "remote")
        form = QFormLayout()
        self.model = QLineEdit(current.model, placeholderText="toy-world (the embedded model)")
        self.model.setToolTip("A diffusers folder or an SD 1.5 checkpoint; empty: the embedded toy-world model")
        self.device = QLineEdit(current.device, placeholderText="automatic (a GPU when there is one)")
        self.device.setToolTip("The local daemon's device: cuda, cuda:1, cpu; empty: chosen automatically")
        self.low_memory = QCheckBox("Low memory (8 to 12 GB GPUs; slower)")
        self.low_memory.setChecked(current.low_memory)
        self.low_memory.setToolTip(
            "The local daemon keeps the text encoder and VAE in CPU memory and recomputes instead of storing:"
            " the same video in less GPU memory"
        )
        self.address = QLineEdit(current.address, placeholderText="tcp://gpu-box:5557")
        self.server_key = QLineEdit(current.server_key, placeholderText="~/.config/anyi2v/keys/gpu-box.key")
        self.server_key.setToolTip("The daemon's public key (NAME.key), needed off loopback")
        self.client_key = QLineEdit(current.client_key, placeholderText="~/.config/anyi2v/keys/laptop.key_secret")
        self.client_key.setToolTip("Your secret key (NAME.key_secret); its public half is on the daemon's allow-list")
        form.addRow("Model", self.model)
        form.addRow("Device", self.device)
        form.addRow("", self.low_memory)
        form.addRow("Address", self.address)
        form.addRow("Server key", self.server_key)
        form.addRow("Client key", self.client_key)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #ff5a5f")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        for widget in (self.local, self.remote):
            layout.addWidget(widget)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)

    def settings(self) -> ConnectionSettings:
        return ConnectionSettings(
            mode="local" if self.local.isChecked() else "remote",
            address=self.address.text().strip(),
            server_key=self.server_key.text().strip(),
            client_key=self.client_key.text().strip(),
            model=self.model.text().strip(),
            device=self.device.text().strip(),
            low_memory=self.low_memory.isChecked(),
        )

    @classmethod
    def ask(cls, current: ConnectionSettings, parent: QWidget | None = None) -> ConnectionSettings | None:
        """The settings the user accepted, or None when they cancelled."""
        dialog = cls(current, parent)
        return dialog.settings() if dialog.exec() else None

    def _accept(self) -> None:
        problem = self.settings().problem()
        if problem is not None:
            self.problem.setText(problem)
            return
        self.accept()
