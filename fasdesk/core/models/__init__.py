"""The model registry (manifest, search folders, integrity) and verified downloads."""
