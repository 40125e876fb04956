"""ESM-2 checkpoints: the registry (no torch) and the one loading path."""
