"""Classifying image files in batches, result records and files, annotation, display bytes."""
