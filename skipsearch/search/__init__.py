"""The Optuna search: space from config, objective, study bookkeeping and the summary."""
