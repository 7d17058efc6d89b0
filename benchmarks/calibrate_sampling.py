"""Calibrate the sampler's defaults against real tunes: which lookback bonus, nucleus cut and
first-rest penalty make generated tunes hardest to tell from real ones?

For each setting of a grid (``--lookback`` bonus x ``--top-p`` x ``--first-rest``), it samples N tunes (default 200)
with the shipped model (or ``--model``) in their dances' default forms, measures them with
:mod:`folkrnn.form`, and compares them with the default corpus's **validation** split (the test
split is left for :mod:`benchmarks.form_quality`): the classifier two-sample accuracy (50%:
indistinguishable), the figures of issue 10's table, and the share of tunes holding a token the
training split seldom writes (``rare_tokens``: less than 1 in 10,000 of its body tokens, as a double
sharp or a quintuplet is; :class:`folkrnn.form.RareTokens`), which the form features do not see and
a musician does (a nucleus cut lowers it, the full distribution keeps it near the real share). The
setting with the lowest accuracy is the one ``SampleConfig`` should default to, unless its rare
tokens are far more common than real tunes'.

Usage: ``python benchmarks/calibrate_sampling.py [-n 200] [--model DIR] [--lookback 0,1,2,3]
[--top-p 1,0.95] [--first-rest 0,1,2] [--seeds 1] [--form free]`` (``--seeds``: runs of N tunes a setting,
from seeds N apart, their accuracies averaged; ``--form``: the form asked of every tune, each dance's
usual one when not given). The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from folkrnn.abc import detokenize  # noqa: E402
from folkrnn.checkpoint import load_model, shipped_model  # noqa: E402
from folkrnn.corpus import build_corpus  # noqa: E402
from folkrnn.errors import FolkError  # noqa: E402
from folkrnn.form import RareTokens, form_features, form_of, form_statistics, two_sample_accuracy  # noqa: E402
from folkrnn.sample import Conditions, SampleConfig, default_workers, sample_tunes  # noqa: E402

SHOWN = ("repeated_bars", "repeated_half_bars", "no_repeated_bar", "rest_inside", "over_two_octaves",
         "ends_on_tonic", "all_parts_8", "rare_tokens")


def forms_of(token_lists) -> list:
    out = []
    for tokens in token_lists:
        try:
            out.append(form_of(detokenize(tokens)))
        except (FolkError, ValueError, IndexError, KeyError):
            pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--n", type=int, default=200, help="tunes per setting")
    parser.add_argument("--seed", type=int, default=7000, help="seed of the first tune")
    parser.add_argument("--model", default=None, help="model directory (default: the shipped model)")
    parser.add_argument("--lookback", default="0,1,2,2.5,3,4", help="lookback bonuses to try")
    parser.add_argument("--top-p", default="1,0.95", help="nucleus cuts to try")
    parser.add_argument("--first-rest", default=str(SampleConfig.first_rest), help="first-rest penalties to try")
    parser.add_argument("--seeds", type=int, default=1, help="runs of N tunes a setting (accuracy averaged)")
    parser.add_argument("--form", default=None, help="the form asked of every tune, as --form takes it "
                        "(default: each dance's usual form; free: what the model writes by itself)")
    args = parser.parse_args()

    model = load_model(args.model or shipped_model("abc"))
    engine, vocabulary = model.engine(), model.vocabulary
    corpus = build_corpus()
    real = forms_of(corpus.valid)
    real_features = form_features(real)
    real_stats = form_statistics(real)
    # tunes with a token the training split seldom writes (less than 1 in 10,000 of its body tokens)
    rarity = RareTokens(corpus.train)
    real_stats["rare_tokens"] = rarity.share(corpus.valid)
    print(f"real: {len(real)} tunes of the validation split")
    print(f"{'lookback':>8} {'top-p':>6} {'rest':>5} {'accuracy':>9} " + " ".join(f"{name[:14]:>14}" for name in SHOWN)
          + "   seconds")
    print(f"{'real':>8} {'':>6} {'':>5} {'':>9} " + " ".join(f"{real_stats[name]:>14.1%}" for name in SHOWN))
    rows = []
    grid = [(float(b), float(p), float(r)) for b in args.lookback.split(",") for p in args.top_p.split(",")
            for r in args.first_rest.split(",")]
    for bonus, top_p, first_rest in grid:
        config = SampleConfig(lookback=bonus, top_p=top_p, first_rest=first_rest)
        start = time.perf_counter()
        forms, accuracies, made_tokens = [], [], []
        for run in range(args.seeds):
            first = args.seed + run * args.n
            results = sample_tunes(engine, vocabulary, list(range(first, first + args.n)),
                                   config=config, conditions=Conditions(form=args.form), workers=default_workers())
            made = forms_of(r.tokens for r in results if r.ok)
            made_tokens += [r.tokens for r in results if r.ok]
            accuracies.append(two_sample_accuracy(form_features(made), real_features, seed=run))
            forms += made
        seconds = time.perf_counter() - start
        stats = form_statistics(forms)
        stats["rare_tokens"] = rarity.share(made_tokens)
        accuracy = sum(accuracies) / len(accuracies)
        rows.append({"lookback": bonus, "top_p": top_p, "first_rest": first_rest, "accuracy": round(accuracy, 4),
                     **{name: round(stats[name], 4) for name in SHOWN}, "tunes": len(forms)})
        print(f"{bonus:>8g} {top_p:>6g} {first_rest:>5g} {accuracy:>9.1%} "
              + " ".join(f"{stats[name]:>14.1%}" for name in SHOWN) + f"   {seconds:7.1f}", flush=True)
    best = min(rows, key=lambda row: row["accuracy"])
    print(f"lowest accuracy: lookback {best['lookback']:g}, top-p {best['top_p']:g}, first rest "
          f"{best['first_rest']:g} ({best['accuracy']:.1%})")
    shown = {name: round(real_stats[name], 4) for name in SHOWN}
    print(json.dumps({"n": args.n, "model": args.model or "shipped", "form": args.form or "default",
                      "real": shown, "settings": rows, "best": best}))


if __name__ == "__main__":
    main()
