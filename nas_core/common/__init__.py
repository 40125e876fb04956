"""Leaf utilities every stage shares: the workspace folder and the metrics (numpy only)."""
