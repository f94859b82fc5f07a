"""The self-contained unlearning benchmark: world, tiny LMs, metrics, baselines, results table (issue 5)."""
