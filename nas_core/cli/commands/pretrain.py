"""What ``pretrain`` does, with a progress line every few percent of the budget."""

from __future__ import annotations

import argparse
import sys

from nas_core.backbones.registry import BackboneUnavailable
from nas_core.cli.flags import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from nas_core.cli.pretrain import FIELDS
from nas_core.modeling.training import TrainingCancelled
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.corpus import CorpusError
from nas_core.pretraining.loop import Progress, Run
from nas_core.pretraining.run import PretrainError, pretrain


def cmd_pretrain(args: argparse.Namespace) -> int:
    try:
        config = PretrainConfig(**{name: getattr(args, name) for name in (*FIELDS, "base")})
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    printer = _Printer(config.tokens)
    try:
        done = pretrain(args.corpus, args.out, config, progress=printer,
                        say=lambda text: print(text, flush=True), credit=args.credit,
                        ignore_labels=args.ignore_labels)
    except (CorpusError, PretrainError, BackboneUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (KeyboardInterrupt, TrainingCancelled):
        print("stopped: rerun the same command to resume from the last checkpoint.",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {done.out_dir}: held-out perplexity {done.perplexity.model:.3f} "
          f"(amino-acid frequencies {done.perplexity.unigram:.3f}); {done.tokens:,} tokens, "
          f"{done.steps:,} steps")
    return EXIT_OK


class _Printer:
    """A progress line every few percent of the budget."""

    def __init__(self, budget: int) -> None:
        self.budget, self.shown = budget, -1

    def __call__(self, progress: Progress, run: Run) -> None:
        percent = int(progress.fraction * 100)
        if percent // 5 == self.shown:
            return
        self.shown = percent // 5
        eta = progress.eta_seconds
        print(f"{progress.position.tokens:,} / {self.budget:,} tokens ({percent}%), step "
              f"{progress.position.step:,}, loss {progress.loss:.3f}, "
              f"{progress.tokens_per_second:,.0f} tokens/s"
              + (f", about {eta / 60:.0f} min left" if eta is not None else ""), flush=True)
