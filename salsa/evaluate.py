"""Evaluation of a pipeline checkpoint on held-out synthetic-world clips (paper §4, Table 1-2, Fig. 5-6).

    python -m salsa.evaluate --checkpoint DIR --split test --steps 1,2,4,8,32 --out OUT \
        [--compare FLOW_DIR] [--guided BAKED_DIR] [--clips 32] [--long-clips 4] [--long-seconds 60] \
        [--seed 0] [--hidden-acoustics | --no-hidden-acoustics] [--text-clips 32] \
        [--reference-seconds 0.5,1,2] [--cfg W] [--cfg-audio W] [--fixed-steps N] [--segment-seconds 10] \
        [--batch 16] [--guided-steps 1,2,4,8] [--timing-repeats 3]

Writes OUT/metrics.md, OUT/metrics.json and PNG plots (salsa/evaluation/: report.py, plots.py): metrics
against sampling steps (Fig. 5 left), against the position in long clips for iterative extension and
one-shot generation (Fig. 5 right), against the length of a ground-truth reference (Fig. 6, with the
hidden-property probes), a caption without vs with the words naming the clip's hidden acoustics (the
text experiment), shortcut against flow-only training at equal steps (Table 2, with --compare), and a
generator with guidance baked into training at one branch per step against the checkpoint's CFG at two
(with --guided). Every clip
comes with the world's exact events, so onsets and materials are scored against ground truth
(docs/evaluation.md). Generated audio is cached under OUT/.cache, so a rerun after an interruption
resumes. From Python: `salsa.evaluation.run.evaluate` with `salsa.evaluation.settings.EvalSettings`.

The field's metrics on real clips (the columns of the paper's Table 1, docs/metrics.md):

    python -m salsa.evaluate --real REAL --generated GEN --weights DIR [--out OUT] \
        [--metrics passt,panns,vggish,imagebind,synchformer,swsd] [--seconds 8] [--batch 8]

REAL and GEN are folders of videos or audio files paired by name (what `salsa.extend --video REAL`
writes into GEN). --weights holds converted bundles (DIR/passt, DIR/panns, DIR/vggish, DIR/imagebind,
DIR/synchformer).
Writes OUT/metrics.md, OUT/metrics.json and OUT/per_clip.csv (OUT defaults to GEN.metrics beside GEN); the
embeddings are cached under OUT/cache, so a rerun after an interruption resumes. The command takes this
form whenever --real or --generated is given; the two forms' flags do not mix. From Python:
`salsa.evaluation.field.run.evaluate_field`.

On Linux it first restarts itself once with glibc's malloc on transparent huge pages, as salsa.train does
(salsa/malloc.py; `GLIBC_TUNABLES=glibc.malloc.hugetlb=0` turns it off).
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before JAX loads: glibc reads its tunables at process start
    from salsa import malloc

    malloc.reexec_with_huge_pages()

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

from data_pipelines.synthetic.heldout import SPLITS
from salsa import cli, compilation_cache
from salsa.errors import UserError
from salsa.evaluation.run import evaluate
from salsa.evaluation.settings import EvalSettings


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.exit(cli.report(UserError(message)))


def _steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not accepted; use comma-separated powers of two, e.g. 1,2,4,8,32"
        ) from None


def _seconds(text: str) -> tuple[float, ...]:
    """Comma-separated lengths in seconds; "" is none (no reference experiment)."""
    try:
        return tuple(cli.finite(s) for s in text.split(",") if s.strip())
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not accepted; use comma-separated lengths in seconds, e.g. 0.25,0.5,1"
        ) from None


SYNTHETIC_ONLY = (
    "--checkpoint",
    "--split",
    "--steps",
    "--compare",
    "--guided",
    "--clips",
    "--long-clips",
    "--long-seconds",
    "--seed",
    "--hidden-acoustics",
    "--no-hidden-acoustics",
    "--text-clips",
    "--reference-seconds",
    "--cfg",
    "--cfg-audio",
    "--fixed-steps",
    "--segment-seconds",
    "--guided-steps",
    "--timing-repeats",
)


def _flag(arg: str) -> str:
    return arg.split("=", 1)[0]


def _metrics(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no embedder; e.g. passt,panns,vggish")
    return names


def _progress(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="clip", file=sys.stderr, disable=None, dynamic_ncols=True)


def field_main(argv: Sequence[str]) -> int:
    """The field's metrics on folders of real and generated clips (see the module doc)."""
    from salsa.evaluation.field.run import evaluate_field

    mixed = sorted({_flag(a) for a in argv} & set(SYNTHETIC_ONLY))
    if mixed:
        raise UserError(
            f"{', '.join(mixed)} belongs to the synthetic-world evaluation (--checkpoint); with --real and "
            "--generated the command scores folders of clips. Use one form or the other."
        )
    p = cli.Parser(prog="python -m salsa.evaluate", description="The field's metrics on real clips.")
    p.add_argument("--real", required=True, help="folder of real videos or audio files")
    p.add_argument("--generated", required=True, help="folder of generated clips, paired with --real by name")
    p.add_argument(
        "--weights",
        help="folder of converted bundles: DIR/passt, DIR/panns, DIR/vggish, DIR/imagebind, DIR/synchformer",
    )
    p.add_argument("--out", help="report folder (default: GEN.metrics beside GEN)")
    p.add_argument(
        "--metrics",
        type=_metrics,
        help="embedders to run, e.g. passt,panns,vggish,imagebind,synchformer,swsd; each must have its "
        "bundle (default: "
        "every bundle found, the missing ones reported as missing)",
    )
    p.add_argument(
        "--seconds", type=cli.positive, default=8.0, help="seconds read from each clip (protocol: 8)"
    )
    p.add_argument("--batch", type=cli.positive_int, default=8, help="clips per embedder call")
    args = p.parse_args(argv)
    if args.weights is None and (args.metrics is None or "swsd" not in args.metrics):
        raise UserError("--weights DIR is required: a folder of converted bundles (docs/metrics.md).")
    out = args.out or os.path.normpath(args.generated) + ".metrics"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_field(
        args.real,
        args.generated,
        args.weights,
        out,
        metrics=args.metrics,
        seconds=args.seconds,
        batch=args.batch,
        progress=_progress,
    )
    print(os.path.join(out, "metrics.md"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    compilation_cache.enable()
    if {_flag(a) for a in argv} & {"--real", "--generated"}:
        return field_main(argv)
    parser = _Parser(
        prog="python -m salsa.evaluate",
        description=__doc__.split("\n")[0],
        epilog="The field's metrics on folders of real and generated clips: python -m salsa.evaluate "
        "--real REAL --generated GEN --weights DIR (see --real x --help).",
    )
    d = EvalSettings()
    parser.add_argument("--checkpoint", required=True, help="pipeline checkpoint folder")
    parser.add_argument("--out", required=True, help="folder for metrics.md, metrics.json and plots")
    parser.add_argument("--split", default=d.split, help=f"synthetic-world split: {', '.join(SPLITS)}")
    parser.add_argument("--steps", type=_steps, default=d.steps, help="sampling steps, e.g. 1,2,4,8,32")
    parser.add_argument("--compare", help="flow-only pipeline checkpoint (Table 2 in miniature)")
    parser.add_argument(
        "--guided", help="pipeline checkpoint trained with guidance baked in: 1 branch vs CFG's 2 per step"
    )
    parser.add_argument("--clips", type=int, default=d.clips, help="window-length test clips")
    parser.add_argument("--long-clips", type=int, default=d.long_clips, help="long clips (0: skip)")
    parser.add_argument("--long-seconds", type=float, default=d.long_seconds, help="long clips' length")
    parser.add_argument("--seed", type=int, default=d.seed, help="noise seed")
    parser.add_argument(
        "--hidden-acoustics",
        action=argparse.BooleanOptionalAction,
        default=d.hidden_acoustics,
        help="render the held-out clips with (or --no-: without) hidden acoustics; default: the "
        "checkpoint's training world (its config's data.world)",
    )
    parser.add_argument(
        "--text-clips", type=int, default=d.text_clips, help="clips of the text experiment (0: skip)"
    )
    parser.add_argument(
        "--reference-clips",
        type=int,
        default=d.reference_clips,
        help="clips of the reference experiment (default: --clips; more are rendered from the split)",
    )
    parser.add_argument(
        "--reference-seconds",
        type=_seconds,
        default=d.reference_seconds,
        help="reference lengths of the reference experiment besides 0 s, e.g. 0.25,0.5,1 ('': skip)",
    )
    parser.add_argument(
        "--cfg",
        type=cli.finite,
        help="guidance scale of the video and text (default: the checkpoint's sampling.cfg)",
    )
    parser.add_argument(
        "--cfg-audio",
        type=cli.finite,
        help="guidance scale of the reference audio (default: the checkpoint's sampling.cfg_audio; "
        "--cfg-audio equal to --cfg is the paper's Eq. 3)",
    )
    parser.add_argument(
        "--fixed-steps",
        type=int,
        help="steps of the long-clip and reference experiments (default: the checkpoint's sampling.steps)",
    )
    parser.add_argument(
        "--segment-seconds", type=cli.finite, default=d.segment_seconds, help="long-clip segment length"
    )
    parser.add_argument(
        "--batch", type=int, default=d.batch, help="clips per generator call (memory, not results)"
    )
    parser.add_argument(
        "--guided-steps", type=_steps, default=d.guided_steps, help="step counts of the --guided comparison"
    )
    parser.add_argument(
        "--timing-repeats",
        type=int,
        default=d.timing_repeats,
        help="timed sampling runs per step count of the --guided comparison (the best is kept)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # Every field has its flag, named as the field (--reference-seconds is reference_seconds).
    settings = EvalSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalSettings)})
    evaluate(args.checkpoint, args.out, compare=args.compare, guided=args.guided, settings=settings)
    print(os.path.join(args.out, "metrics.md"))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
