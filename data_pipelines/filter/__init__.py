"""Sync filtering of extracted feature sets (paper §4, "Datasets"): `python -m data_pipelines.filter`."""
