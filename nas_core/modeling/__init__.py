"""One candidate model: architecture, modules, building, batches, losses, the training loop,
the representation cache."""
