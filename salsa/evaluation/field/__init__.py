"""The field's metrics on real clips (`python -m salsa.evaluate --real REAL --generated GEN --weights DIR`):
the columns of the paper's Table 1 and MMAudio's (FD with PaSST, PANNs and VGGish; KL with PaSST and
PANNs; IS; IB; DeSync) plus SWSD, under the av-benchmark protocol (docs/metrics.md).

    inputs.py     the clips: REAL and GEN paired by name, audio read as the protocol reads it (Skip otherwise)
    embedders.py  the registry: one entry per embedder (its bundle, its columns, how it reads and runs)
    imagebind.py  the IB column's embedder: audio and video of a clip read as ImageBind's data.py does
    cache.py      OUT/cache: one .npz per clip and embedder, keyed by file content, bundle and protocol
    scoring.py    the columns from the embeddings of the scored pairs
    report.py     metrics.md, metrics.json, per_clip.csv
    run.py        evaluate_field(): pair, embed in batches (resuming from the cache), score, report
"""
