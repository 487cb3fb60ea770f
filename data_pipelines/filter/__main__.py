"""Keeps the clips of a feature set whose sound the sync model finds aligned with the picture.

    python -m data_pipelines.filter --features DIR --out OUT (--keep 0.5 | --threshold S) \
        [--vae BUNDLE] [--sync BUNDLE]

Scores every clip (temporal and semantic alignment, data_pipelines/filter/scores.py), writes the scores
beside the shards (DIR/sync_scores.csv) and the kept records as a new feature set in OUT that training
reads unchanged, with a report (OUT/filter_report.md, OUT/filter_scores.png). The VAE and sync bundles
default to those DIR/extraction.json names. Bad input is one line, `error: ...`, and exit code 2, with
nothing written.

On Linux it first restarts itself once with glibc's malloc on transparent huge pages, as salsa.train does
(salsa/malloc.py; `GLIBC_TUNABLES=glibc.malloc.hugetlb=0` turns it off).
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before JAX loads: glibc reads its tunables at process start
    from salsa import malloc

    malloc.reexec_with_huge_pages()

import sys
from collections.abc import Sequence

from tqdm import tqdm

from data_pipelines.features import records
from data_pipelines.filter import run
from salsa import cli


def _parser() -> cli.Parser:
    p = cli.Parser(prog="python -m data_pipelines.filter", description=__doc__.split("\n")[0])
    p.add_argument("--features", required=True, help="a feature set (python -m data_pipelines.extract)")
    p.add_argument("--out", required=True, help="a new folder for the kept clips")
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--keep", type=cli.positive, help="the fraction of clips to keep, in (0, 1]")
    rule.add_argument("--threshold", type=cli.finite, help="keep clips whose combined score is >= this")
    p.add_argument("--vae", help="VAE bundle the features were extracted with (default: extraction.json's)")
    p.add_argument("--sync", help="sync bundle the features were extracted with (default: extraction.json's)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    paths = run.check_settings(args.features, args.out, args.keep, args.threshold)
    models = run.load_models(args.features, vae=args.vae, sync=args.sync)
    total = sum(records.num_records(p) for p in paths)
    with tqdm(desc="sync filter", total=total, unit="clip", dynamic_ncols=True) as bar:
        result = run.filter_features(
            args.features,
            args.out,
            models.sync,
            models.audio,
            keep=args.keep,
            threshold=args.threshold,
            components=models.paths,
            on_clip=lambda _: bar.update(1),
        )
    print(run.summary_line(result), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
