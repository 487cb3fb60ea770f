"""Evaluation of a pipeline checkpoint on held-out synthetic-world clips (`python -m salsa.evaluate`).

    settings.py     EvalSettings (what to measure), EvalError
    run.py          evaluate(): check the input, load checkpoints, run the experiments, write the report
    experiments.py  steps, reference, text, long, compare (flow-only), guided (baked vs CFG), over `Shared`;
                    generation on a thread ahead of the scoring (Ahead)
    generation.py   audio for held-out clips from a checkpoint (and through its codec); sampling time
    cache.py        the generated-audio cache, keyed on checkpoint signature and part spec
    scoring.py      score(): one metrics row with bootstrap intervals
    hidden.py       the hidden-property probes (room, microphone, pitch) on generated audio, with intervals
    targets.py      targets (docs/targets.json) judged from the intervals
    report.py       metrics.json and metrics.md; plots.py the PNG plots

The held-out clips themselves are the synthetic world's (data_pipelines/synthetic/heldout.py); the
metrics are salsa/metrics'.
"""
