"""Raw training dataset layouts and collected samples."""
