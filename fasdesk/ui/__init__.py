"""The PySide6 desktop GUI (no image math here: fasdesk.core does that)."""
