"""Training speed on this machine: tokens/s and model FLOPs utilisation (MFU) of the 3x512 LSTM.

Measured in one run:

1. the machine's fp32 matrix-multiply rate (torch.matmul of 2048 x 2048 matrices, best of several
   rounds, sampled before, between and after the training measurements); NumPy's OpenBLAS is
   timed at the start and the end too, and MFU against the faster of the two libraries is printed
   as well (on some CPUs one library's kernels are well ahead of the other's);
2. training throughput of folkrnn's own training step (``folkrnn.train``: length-bucketed batches,
   truncated BPTT, dropout masks, clipping, AdamW) on the default corpus's real tune lengths and
   tokens (synthetic lengths of the same shape when the corpus cannot be built), at batch 64 (the
   shipped model's) and 128;
3. for reference, a plain nn.LSTM loop on full random batches of 128 tokens, as the issue quotes.

MFU = 6 x parameters (embedding table excluded: it is a lookup) x non-padding tokens/s / matmul
rate. The headline ``mfu`` takes the median batch's tokens/s against torch's best matmul rate of
the whole run (the least flattering of its samples). The 2 cores may be shared with other work, so each batch
is also timed alone between two short matmul-rate samples and its MFU taken against them
(``mfu_local``, the median over batches: a busy moment lowers both figures rather than one). The
last line is JSON with ``tokens_per_s``, ``mfu`` and ``padding`` at batch 64.

Usage: ``python benchmarks/train_speed.py [--batches 6] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from folkrnn.model import ModelConfig  # noqa: E402
from folkrnn.train import TrainConfig, _as_ids, _Dist, _Trainer, corpus_vocabulary, padding_fraction, plan_epoch  # noqa: E402


def matmul_rate(size: int = 2048, rounds: int = 5, reps: int = 8, library: str = "torch") -> float:
    """Best sustained fp32 matmul rate in FLOP/s, of torch (what trains) or of NumPy's OpenBLAS."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    if library == "torch":
        def product():
            torch.matmul(a, b, out=out)
    else:
        na, nb, nout = a.numpy().copy(), b.numpy().copy(), np.empty((size, size), np.float32)

        def product():
            np.matmul(na, nb, out=nout)
    for _ in range(2):
        product()
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(reps):
            product()
        best = max(best, 2 * size ** 3 * reps / (time.perf_counter() - started))
    return best


def load_corpus():
    """The default corpus (its real tunes), or synthetic tunes with folk-tune lengths."""
    try:
        from folkrnn.corpus import build_corpus

        corpus = build_corpus()
        return corpus, "default corpus"
    except Exception as error:  # noqa: BLE001 - any failure falls back to synthetic data
        print(f"default corpus unavailable ({error}); using synthetic lengths", file=sys.stderr)
    rng = np.random.default_rng(0)
    tokens = [f"t{i}" for i in range(134)]
    lengths = np.clip(rng.lognormal(np.log(140), 0.45, size=11_500), 20, 1200).astype(int)
    tunes = [["<s>", *rng.choice(tokens, size=n - 2).tolist(), "</s>"] for n in lengths]
    return SimpleNamespace(train=tunes, valid=[], test=[], encoding="abc", info={}), "synthetic"


def folkrnn_throughput(corpus, batch_size: int, batches: int, out: str) -> dict:
    """Tokens/s, MFU and padding of folkrnn's training step on ``batches`` planned batches.

    Each batch is timed alone, between two short matmul-rate samples; its MFU is taken against
    the better of the two, so a moment when another process holds a core lowers both figures
    rather than only one.
    """
    vocabulary = corpus_vocabulary(corpus)
    splits = {"train": _as_ids(corpus.train, vocabulary), "valid": [], "test": []}
    config = TrainConfig(batch_size=batch_size, out=out, progress=False, force=True)
    model_config = ModelConfig(vocab_size=len(vocabulary)).to_dict()
    parameters = ModelConfig(**model_config).parameter_count(embedding=False)
    trainer = _Trainer(config, model_config, vocabulary, splits, {}, "abc", _Dist(torch, "cpu"))
    tunes = splits["train"]
    lengths = np.array([len(t) for t in tunes])
    plan = plan_epoch(lengths, batch_size, seed=0, epoch=0)
    full = [batch for batch in plan if len(batch) == batch_size]
    chosen = full[: batches + 1]
    trainer.train_batch(trainer.net, [tunes[i] for i in chosen[0]])  # warm-up, not timed
    rates, mfus, samples, real, seconds = [], [], [], 0, 0.0
    before = matmul_rate(rounds=2, reps=3)
    for batch in chosen[1:]:
        started = time.perf_counter()
        trainer.train_batch(trainer.net, [tunes[i] for i in batch])
        took = time.perf_counter() - started
        after = matmul_rate(rounds=2, reps=3)
        tokens = int((lengths[batch] - 1).sum())
        rates.append(tokens / took)
        mfus.append(6 * parameters * tokens / took / max(before, after))
        samples += [before, after]
        before = after
        real += tokens
        seconds += took
    return {
        "batch_size": batch_size,
        "batches": len(chosen) - 1,
        "tokens": real,
        "seconds": round(seconds, 2),
        "tokens_per_s": float(np.median(rates)),
        "tokens_per_s_mean": real / seconds,
        "mfu": float(np.median(mfus)),
        "mfu_per_batch": [round(m, 3) for m in mfus],
        "mfu_best": max(mfus),
        "lengths": [int(lengths[batch].max()) for batch in chosen[1:]],
        "matmul_samples": samples,
        "padding_measured": padding_fraction(lengths, chosen[1:], config.bptt),
        "padding_epoch": padding_fraction(lengths, plan, config.bptt),
        "parameters": parameters,
    }


def plain_lstm_throughput(batch_size: int, steps: int = 3, length: int = 128, vocab: int = 137) -> dict:
    """The issue's reference: nn.LSTM(3 layers, dropout) on full random batches, AdamW."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=vocab)

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, config.embedding_size)
            self.lstm = torch.nn.LSTM(config.embedding_size, config.hidden_size, config.layers,
                                      batch_first=True, dropout=config.dropout)
            self.head = torch.nn.Linear(config.hidden_size, vocab)

        def forward(self, ids):
            return self.head(self.lstm(self.embedding(ids))[0])

    model = Plain()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, vocab, (batch_size, length + 1))

    def step() -> None:
        logits = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()

    step()
    rates, mfus = [], []
    parameters = config.parameter_count(embedding=False)
    before = matmul_rate(rounds=2, reps=3)
    for _ in range(steps):
        started = time.perf_counter()
        step()
        took = time.perf_counter() - started
        after = matmul_rate(rounds=2, reps=3)
        rates.append(batch_size * length / took)
        mfus.append(6 * parameters * batch_size * length / took / max(before, after))
        before = after
    return {"batch_size": batch_size, "tokens_per_s": float(np.median(rates)), "mfu": float(np.median(mfus))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=8, help="timed batches per batch size")
    parser.add_argument("--quick", action="store_true", help="skip the plain nn.LSTM reference")
    parser.add_argument("--out", default="outputs/bench-train-speed", help="scratch directory")
    args = parser.parse_args()

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {threads} threads; load average {load_before:.2f} "
          "(other processes on these cores slow every LSTM step)")
    rate_before = matmul_rate()
    openblas_before = matmul_rate(library="numpy")
    print(f"fp32 matmul rate: {rate_before / 1e9:.0f} GFLOP/s (torch), {openblas_before / 1e9:.0f} GFLOP/s "
          "(NumPy's OpenBLAS)")
    corpus, source = load_corpus()
    print(f"data: {source}, {len(corpus.train):,} training tunes")

    results = {}
    for batch_size in (64, 128):
        measured = folkrnn_throughput(corpus, batch_size, args.batches, args.out)
        results[batch_size] = measured
        print(f"folkrnn batch {batch_size}: {measured['tokens_per_s']:,.0f} tokens/s (median batch; mean "
              f"{measured['tokens_per_s_mean']:,.0f}) over {measured['batches']} batches "
              f"({measured['tokens']:,} tokens, {measured['seconds']} s), "
              f"MFU {measured['mfu']:.1%} against the rate around each batch "
              f"(per batch {measured['mfu_per_batch']} at lengths {measured['lengths']}), "
              f"padding {measured['padding_measured']:.1%} "
              f"(whole epoch {measured['padding_epoch']:.1%})")
    reference = {} if args.quick else {b: plain_lstm_throughput(b, steps=5) for b in (64, 128)}
    rate_after = matmul_rate()
    samples = [rate_before, rate_after] + results[64]["matmul_samples"] + results[128]["matmul_samples"]
    rate = max(samples)
    openblas = max(openblas_before, matmul_rate(library="numpy"))
    fastest = max(rate, openblas)
    load_after = os.getloadavg()[0]
    print(f"fp32 matmul rate: {rate_after / 1e9:.0f} GFLOP/s at the end, best of the run {rate / 1e9:.0f} "
          f"(torch), {openblas / 1e9:.0f} (OpenBLAS); load average {load_after:.2f}")
    parameters = results[64]["parameters"]
    for batch_size, measured in results.items():
        print(f"MFU batch {batch_size}: {6 * parameters * measured['tokens_per_s'] / rate:.1%} against the run's "
              f"best matmul rate ({parameters:,} parameters); {measured['mfu']:.1%} as the median of batches, "
              f"each against the matmul rate measured around it; against the faster library's rate "
              f"({fastest / 1e9:.0f} GFLOP/s): {6 * parameters * measured['tokens_per_s'] / fastest:.1%}")
    for batch_size, measured in reference.items():
        print(f"plain nn.LSTM loop, full random batches of 128 tokens, batch {batch_size}: "
              f"{measured['tokens_per_s']:,.0f} tokens/s, MFU {6 * parameters * measured['tokens_per_s'] / rate:.1%} "
              f"against the run's best rate ({measured['mfu']:.1%} against the rate around it)")
    main_result = results[64]
    print(json.dumps({
        "tokens_per_s": round(main_result["tokens_per_s"], 1),
        "tokens_per_s_mean": round(main_result["tokens_per_s_mean"], 1),
        "mfu": round(6 * parameters * main_result["tokens_per_s"] / rate, 4),
        "mfu_local": round(main_result["mfu"], 4),
        "mfu_vs_fastest_library": round(6 * parameters * main_result["tokens_per_s"] / fastest, 4),
        "mfu_best_batch": round(main_result["mfu_best"], 4),
        "padding": round(main_result["padding_measured"], 4),
        "padding_epoch": round(main_result["padding_epoch"], 4),
        "batch_size": 64,
        "batch_128": {"tokens_per_s": round(results[128]["tokens_per_s"], 1),
                      "mfu": round(6 * parameters * results[128]["tokens_per_s"] / rate, 4),
                      "mfu_local": round(results[128]["mfu"], 4),
                      "mfu_best_batch": round(results[128]["mfu_best"], 4),
                      "padding": round(results[128]["padding_measured"], 4)},
        "plain_lstm": {str(b): {"tokens_per_s": round(m["tokens_per_s"], 1),
                                "mfu": round(6 * parameters * m["tokens_per_s"] / rate, 4)}
                       for b, m in reference.items()},
        "matmul_gflops_best": round(rate / 1e9, 1),
        "openblas_gflops_best": round(openblas / 1e9, 1),
        "parameters": parameters,
        "threads": threads,
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "data": source,
    }))


if __name__ == "__main__":
    main()
