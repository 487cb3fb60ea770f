"""Offline feature extraction: clips -> feature record shards + extraction.json (docs/extraction.md).

    python -m data_pipelines.extract --config=configs/extract_tiny.py --workdir=OUT

`run.extract(config, workdir, process_index, process_count)` is the library entry point.
"""
