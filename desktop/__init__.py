"""The PySide6 studio (``anyi2v studio``).

``models/`` holds every decision in plain Python (no Qt: the import-linter contract says so) and is
tested without a display; ``qt/`` holds thin widgets that draw a model, forward the user's gestures to
it and listen for its changes.
"""
