"""A deliberately vulnerable sample application (see ../EXPECTED.md)."""
