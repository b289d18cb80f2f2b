# The two commands of the README, and the steps they are made of.
#   make demo   set everything up, then run the main job on the embedded default model
#   make test   set everything up, then run every check and test
# Both create or reuse the virtual environment in .venv at the repo root.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp
export HF_HUB_OFFLINE := 1
export QT_QPA_PLATFORM := offscreen

.PHONY: system-deps setup demo test lint typecheck layers pytest clean

# System libraries the wheels link but do not bundle: Open3D needs libusb-1.0; Qt (even offscreen)
# needs EGL, GL, xkbcommon, fontconfig, GLib and D-Bus; Qt on a real X display (the xcb plugin) needs
# the xcb libraries. Xvfb (a program) runs the studio's test on a real X server. Each missing one is
# installed from Debian.
SYSTEM_LIBS := libusb-1.0.so.0:libusb-1.0-0 libEGL.so.1:libegl1 libGL.so.1:libgl1 \
	libxkbcommon.so.0:libxkbcommon0 libfontconfig.so.1:libfontconfig1 libglib-2.0.so.0:libglib2.0-0 \
	libdbus-1.so.3:libdbus-1-3 libxcb-cursor.so.0:libxcb-cursor0 libxcb-icccm.so.4:libxcb-icccm4 \
	libxcb-keysyms.so.1:libxcb-keysyms1 libxkbcommon-x11.so.0:libxkbcommon-x11-0 \
	libxcb-image.so.0:libxcb-image0 libxcb-render-util.so.0:libxcb-render-util0 \
	libxcb-randr.so.0:libxcb-randr0 libxcb-shape.so.0:libxcb-shape0 libxcb-xkb.so.1:libxcb-xkb1 \
	libX11-xcb.so.1:libx11-xcb1
system-deps:
	@missing=""; for pair in $(SYSTEM_LIBS); do \
		ldconfig -p | grep -q "$${pair%%:*}" || missing="$$missing $${pair##*:}"; done; \
		command -v Xvfb > /dev/null || missing="$$missing xvfb"; \
	[ -z "$$missing" ] || { \
		echo "installing$$missing (shared libraries Open3D and Qt need, and Xvfb for the studio test)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing > /dev/null; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

# Dependencies are (re)installed when pyproject.toml changes.
# torch is pinned to its CPU build first: a bare torch requirement would pull gigabytes of CUDA.
TORCH ?= torch==2.13.0
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[render,daemon,eval,desktop,dev]" --config-settings editable_mode=strict
	touch $(STAMP)

# The package itself is relinked on every run (a second or two), so new modules are always seen:
# the strict editable mode gives tools (mypy, import-linter) a real anyi2v/ tree to read.
setup: system-deps $(STAMP)
	@$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict \
		> $(VENV)/relink.log 2>&1 || { cat $(VENV)/relink.log; exit 1; }

# The main job, end to end on the CPU: a torus mesh rendered to a depth condition, one box keyframed
# to move right, animated by the embedded toy-world model (no --model) into out/demo.mp4.
demo: setup
	$(BIN)/anyi2v validate --summary examples/demo.json
	$(BIN)/anyi2v animate examples/demo.json --out out/demo.mp4

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy -p anyi2v

layers: setup
	$(BIN)/lint-imports

pytest: setup
	$(BIN)/python -m pytest

test: lint typecheck layers pytest

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .import_linter_cache .hypothesis
