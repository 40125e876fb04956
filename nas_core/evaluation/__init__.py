"""After the search: the held-out test, the reference model, trust (leakage, conformal),
report.json."""
