"""Time to quality of a training run: wall-clock minutes until its validation loss first beats the
interpolated Kneser-Ney 5-gram baseline (fitted to the same training split and tokens).

Reads ``<run>/train_log.jsonl`` (one line per evaluation, with ``wall_s`` and ``valid_loss``) and
the run's ``config.json`` (the corpus it was trained on), rebuilds that corpus (cached), fits the
n-gram model on its training split and scores the validation split. Prints every evaluation and the
first one that beats the baseline; ``--margin 0.2`` also reports when the model first got 20%
below it. The last line is JSON.

Usage: ``python benchmarks/time_to_quality.py outputs/abc-3x256c [--order 5]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def first_below(log: list[dict], threshold: float) -> dict | None:
    """The first evaluation whose validation loss is below ``threshold``, or None."""
    return next((entry for entry in log if entry.get("valid_loss") is not None
                 and entry["valid_loss"] < threshold), None)


def plot(log: list[dict], baseline: float, target: float, order: int, path: Path) -> None:
    """Validation (and running training) loss against wall-clock minutes, with the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [e["wall_s"] / 60 for e in log]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.plot(minutes, [e["valid_loss"] for e in log], "o-", ms=3, label="validation loss")
    trained = [(m, e["train_loss"]) for m, e in zip(minutes, log) if e.get("train_loss") is not None]
    axis.plot(*zip(*trained), ".-", ms=2, alpha=0.6, label="training loss (running mean, dropout on)")
    axis.axhline(baseline, color="black", ls="--", label=f"Kneser-Ney {order}-gram ({baseline:.3f})")
    axis.axhline(target, color="grey", ls=":", label=f"20% below it ({target:.3f})")
    axis.set_xlabel("wall-clock minutes")
    axis.set_ylabel("nats/token")
    axis.set_ylim(min(e["valid_loss"] for e in log) - 0.1, baseline + 0.8)
    axis.set_title("Time to quality")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training run's folder (train_log.jsonl, config.json)")
    parser.add_argument("--order", type=int, default=5, help="n of the Kneser-Ney baseline")
    parser.add_argument("--margin", type=float, default=0.2, help="also report beating it by this fraction")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the curve to this PNG")
    args = parser.parse_args()

    from folkrnn.checkpoint import load_model
    from folkrnn.corpus import build_corpus
    from folkrnn.ngram import fit_ngram

    log_path = args.run / "train_log.jsonl"
    if not log_path.is_file():
        raise SystemExit(f"{log_path}: no training log")
    log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    model = load_model(args.run)
    if model.encoding != "abc":
        raise SystemExit("the n-gram baseline is over ABC tokens; this run is not an ABC model")
    corpus = build_corpus()  # the default corpus, as the shipped model is trained on
    vocabulary = [t for t in model.vocabulary.tokens if t not in ("<pad>", "<s>")]
    ngram = fit_ngram(corpus.split("train"), order=args.order, vocabulary=vocabulary)
    baseline = ngram.cross_entropy(corpus.split("valid"))
    target = baseline * (1 - args.margin)
    print(f"{args.order}-gram validation loss: {baseline:.4f} nats/token; {int(args.margin * 100)}% "
          f"below it: {target:.4f}")
    for entry in log:
        print(f"  {entry['wall_s'] / 60:7.2f} min  epoch {entry['epoch']:7.3f}  valid {entry['valid_loss']:.4f}")
    beat, beat_margin = first_below(log, baseline), first_below(log, target)
    minutes = round(beat["wall_s"] / 60, 2) if beat else None
    minutes_margin = round(beat_margin["wall_s"] / 60, 2) if beat_margin else None
    print(f"first beats the {args.order}-gram: {minutes} min (epoch {beat['epoch'] if beat else None}); "
          f"by {int(args.margin * 100)}%: {minutes_margin} min")
    if args.plot is not None:
        plot(log, baseline, target, args.order, args.plot)
        print(f"plot: {args.plot}")
    hardware = model.training.get("hardware", {})
    print(json.dumps({"ngram_valid_loss": round(baseline, 4), "minutes_to_beat_ngram": minutes,
                      "epochs_to_beat_ngram": beat["epoch"] if beat else None,
                      f"minutes_to_beat_ngram_by_{int(args.margin * 100)}pct": minutes_margin,
                      "best_valid_loss": min(e["valid_loss"] for e in log),
                      "evaluations": len(log), "hardware": hardware}))


if __name__ == "__main__":
    main()
