"""Models out: export, model card, charts, Hub publishing, prediction."""
