"""Design: which candidate sequences to measure next (acquisition rules over the ensemble's
predictions, with a diversity penalty)."""
