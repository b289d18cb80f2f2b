"""The PySide6 studio. Qt-free models hold the truth; widgets are thin views over them."""
