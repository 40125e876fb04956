"""Compress: smaller variants of a finished search's model, pruned or cut and distilled from it,
tested once and timed side by side (a model-making job of its own)."""
