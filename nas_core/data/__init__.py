"""Labelled sequences in: reading files, validation, the dataset store, homology, splits and
the shipped examples."""
