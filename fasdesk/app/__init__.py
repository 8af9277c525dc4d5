"""The application layer, no Qt: the one evented AppState and the use cases both front
ends (the GUI in fasdesk.ui, the command line) drive. See docs/architecture.md."""
