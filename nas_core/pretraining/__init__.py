"""Pretraining: masked-language-model training of an ESM-2-shaped backbone on unlabelled
protein sequences, from scratch or continued from any backbone the registry resolves."""
