"""The studio's widgets: thin views over ``anyi2v.desktop.models``. Nothing here decides anything a
test needs to check without a display."""
