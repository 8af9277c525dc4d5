"""Safe file reading and atomic writing, image reading, settings files, paths."""
