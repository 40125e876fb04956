"""Search strategies beyond Optuna's samplers: a REINFORCE controller and DARTS."""
