"""Files copied into every exported model repository (they import only torch/transformers)."""
