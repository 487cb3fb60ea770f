"""Evaluation of a pipeline checkpoint on held-out synthetic-world clips (paper §4, Table 1-2, Fig. 5-6).

    python -m salsa.evaluate --checkpoint DIR --split test --steps 1,2,4,8,32 --out OUT \
        [--compare FLOW_DIR] [--guided BAKED_DIR] [--clips 32] [--long-clips 4] [--long-seconds 60] \
        [--seed 0] [--hidden-acoustics | --no-hidden-acoustics] [--text-clips 32]

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
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from data_pipelines.synthetic.heldout import SPLITS
from salsa import cli
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
            f"--steps {text!r} is not accepted; use comma-separated powers of two, e.g. 1,2,4,8,32."
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m salsa.evaluate", description=__doc__.split("\n")[0])
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = EvalSettings(
        split=args.split,
        steps=args.steps,
        clips=args.clips,
        long_clips=args.long_clips,
        long_seconds=args.long_seconds,
        seed=args.seed,
        hidden_acoustics=args.hidden_acoustics,
        text_clips=args.text_clips,
    )
    evaluate(args.checkpoint, args.out, compare=args.compare, guided=args.guided, settings=settings)
    print(os.path.join(args.out, "metrics.md"))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
