"""The architecture search: space, configuration, budget, storage, objective, study, presets,
and the strategies that are ours (REINFORCE, DARTS)."""
