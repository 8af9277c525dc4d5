"""The application layer: the use cases both front ends drive (no Qt)."""
