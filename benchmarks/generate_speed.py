"""How fast folkrnn composes and generates, as ratios measured in one run.

1. ``folkrnn compose --title X --seed 1 --format abc,mid,svg``, end to end (process start to exit),
   against ``python -c "import torch"`` on the same machine: medians of 5, run alternately
   (target: below 0.6).
2. ``generate``: tunes per second for N tunes sampled together on the NumPy engine (constrained,
   temperature 1, in as many worker processes as ``generate`` uses: one per core), against one
   tune at a time with ``torch.nn.LSTM`` (the same weights, plain sampling with
   ``torch.multinomial``, torch's default threads); the baseline makes tunes of the same mean
   length (target: at least 20x). The full ``generate`` (validation and a MIDI file per tune) is
   timed too. The CPU time of both is printed beside the wall time: on a shared machine (another
   process on a core) the wall times move, the CPU seconds a tune costs much less.
3. Per-token latency at batch 1 for a 3x512 model: the NumPy engine's step against folk-rnn's own
   NumPy sampler, reimplemented here: one-hot input, four separate gate matrices per layer for the
   input and four for the state, ``rng.choice`` on the softmax (target: at most 0.5). Both with
   one BLAS thread (what the sampler uses at batch 1) and with BLAS's default threads.

The model is the shipped default (``folkrnn/models/abc``) when it is installed; otherwise random
weights of the default shape (3 x 512, embedding 256, the default corpus's vocabulary), which is
what the speed figures need (the shape), though random weights make random tunes, the hardest case
for the constraint's state cache. The output says which was used.

Usage: ``python benchmarks/generate_speed.py [--n 1000] [--repeats 5] [--quick]``; the last line is
a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def vocabulary_tokens() -> list[str]:
    """The default corpus's vocabulary (from the corpus cache when there is one)."""
    from folkrnn.vocab import Vocabulary

    caches = sorted((REPO / "corpora" / "cache").glob("corpus-abc-*.json"), key=lambda p: p.stat().st_mtime)
    for cache in reversed(caches):
        try:
            data = json.loads(cache.read_text())
            return Vocabulary.build(data["splits"]["train"]).to_list()
        except (KeyError, ValueError, OSError):
            continue
    from folkrnn.corpus import build_corpus

    return Vocabulary.build(build_corpus().split("train")).to_list()


def model_directory(work: Path, given: str | None = None) -> tuple[Path, str]:
    """The model given, else the shipped one, else a random one of the default shape."""
    from folkrnn.checkpoint import SHIPPED

    if given:
        from folkrnn.checkpoint import load_model

        shape = load_model(given).model_config
        return Path(given), (f"{given} ({shape['layers']}x{shape['hidden_size']}, embedding "
                             f"{shape['embedding_size']}, {shape['vocab_size']} tokens)")
    if (SHIPPED / "abc" / "config.json").is_file():
        return SHIPPED / "abc", f"the shipped default model ({SHIPPED / 'abc'})"
    from folkrnn.checkpoint import expected_shapes, save_model
    from folkrnn.vocab import Vocabulary

    vocabulary = Vocabulary(vocabulary_tokens())
    config = {"vocab_size": len(vocabulary), "embedding_size": 256, "hidden_size": 512, "layers": 3,
              "dropout": 0.5}
    rng = np.random.default_rng(0)
    weights = {name: rng.normal(0, 0.08, shape).astype(np.float32)
               for name, shape in expected_shapes(config).items()}
    path = work / "random-3x512"
    save_model(path, weights, config, vocabulary, "abc", {})
    return path, (f"random weights of the default shape (3x512, embedding 256, {len(vocabulary)} tokens): "
                  "no model is installed")


# --- 1. compose end to end ---------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU seconds this process and its finished children (the sampling workers) have used."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_command(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return elapsed


def compose_figure(model: Path, work: Path, repeats: int) -> dict:
    compose = [sys.executable, "-m", "folkrnn", "compose", "--title", "X", "--seed", "1", "--format",
               "abc,mid,svg", "--model", str(model), "--out", str(work / "compose"), "--force"]
    torch = [sys.executable, "-c", "import torch"]
    time_command(compose, REPO)  # warm the file cache once for both
    time_command(torch, REPO)
    compose_times, torch_times = [], []
    for _ in range(repeats):
        compose_times.append(time_command(compose, REPO))
        torch_times.append(time_command(torch, REPO))
    compose_s, torch_s = statistics.median(compose_times), statistics.median(torch_times)
    print(f"compose --title X --seed 1 --format abc,mid,svg: {compose_s:.3f} s (median of {repeats}); "
          f"python -c 'import torch': {torch_s:.3f} s; ratio {compose_s / torch_s:.2f} (target < 0.6)")
    return {"compose_s": round(compose_s, 4), "import_torch_s": round(torch_s, 4),
            "compose_over_import_torch": round(compose_s / torch_s, 3),
            "compose_runs_s": [round(t, 3) for t in compose_times],
            "import_torch_runs_s": [round(t, 3) for t in torch_times]}


# --- 2. generate: batched NumPy vs torch one at a time --------------------------------------------


def torch_one_at_a_time(checkpoint, tunes: int, length: int, cpu: list | None = None) -> float:
    """Seconds for ``tunes`` tunes of ``length`` tokens each, sampled one at a time with torch.nn.LSTM
    (the model's own torch module on these weights, inference mode, torch.multinomial); the CPU
    seconds it used are appended to ``cpu``."""
    import torch

    from folkrnn.model import LanguageModel, ModelConfig

    model = LanguageModel(ModelConfig(**checkpoint.model_config))
    model.load_state_dict({name: torch.from_numpy(value) for name, value in checkpoint.weights.items()})
    model.eval()
    generator = torch.Generator().manual_seed(0)
    bos = checkpoint.vocabulary.bos_id
    started, started_cpu = time.perf_counter(), cpu_seconds()
    features = len(checkpoint.model_config.get("feature_sizes") or ())
    step = torch.zeros((1, 1, 1 + features), dtype=torch.long)  # a model with position features reads them too
    with torch.inference_mode():
        for _ in range(tunes):
            state = None
            token = torch.tensor([[bos]])
            for _ in range(length):
                if features:
                    step[0, 0, 0] = token.view(())
                logits, state = model(step if features else token, state)
                probabilities = torch.softmax(logits[0, -1], dim=-1)
                token = torch.multinomial(probabilities, 1, generator=generator).view(1, 1)
    if cpu is not None:
        cpu.append(cpu_seconds() - started_cpu)
    return time.perf_counter() - started


BASELINE_LENGTH = 170  # tokens a baseline tune (the shipped model's tunes average about that)


def generate_figure(model: Path, count: int, baseline_tunes: int, work: Path) -> dict:
    from folkrnn.checkpoint import load_model
    from folkrnn.compose import ComposeOptions, generate, load_composer
    from folkrnn.sample import default_workers, sample_tunes

    composer = load_composer(model)
    checkpoint = load_model(model)
    workers = default_workers()  # what generate uses
    # the baseline is timed three times (before the batch and twice after) and its median taken:
    # one run of a few seconds on a shared machine moves by a quarter either way
    baseline_cpu: list[float] = []
    baseline_runs = [torch_one_at_a_time(checkpoint, baseline_tunes, BASELINE_LENGTH, baseline_cpu)]
    started, started_cpu = time.perf_counter(), cpu_seconds()
    results = sample_tunes(composer.engine, composer.vocabulary, list(range(count)), workers=workers)
    batched_s, batched_cpu = time.perf_counter() - started, cpu_seconds() - started_cpu
    made = [r for r in results if r.ok]
    tokens = sum(len(r.tokens) for r in made)
    mean_length = tokens / max(len(made), 1)
    batched_rate = len(made) / batched_s
    baseline_runs += [torch_one_at_a_time(checkpoint, baseline_tunes, BASELINE_LENGTH, baseline_cpu)
                      for _ in range(2)]
    # tunes of the batch's mean length, at the baseline's median speed per token
    baseline_token_rates = [baseline_tunes * BASELINE_LENGTH / seconds for seconds in baseline_runs]
    baseline_rate = statistics.median(baseline_token_rates) / mean_length
    baseline_s = baseline_tunes / baseline_rate
    baseline_cpu_per_token = statistics.median(baseline_cpu) / (baseline_tunes * BASELINE_LENGTH)
    print(f"generate, sampling {count} tunes together (NumPy, constrained, {workers} worker processes): "
          f"{batched_s:.1f} s ({batched_cpu:.1f} CPU s, {batched_cpu / max(len(made), 1) * 1e3:.1f} CPU ms a tune), "
          f"{batched_rate:.1f} tunes/s, {tokens / batched_s:,.0f} tokens/s, {mean_length:.0f} tokens a tune, "
          f"{len(made)} made")
    print(f"torch.nn.LSTM one tune at a time (3 runs of {baseline_tunes} tunes of {BASELINE_LENGTH} tokens: "
          f"{', '.join(f'{rate:,.0f}' for rate in baseline_token_rates)} tokens/s; the median, for tunes of "
          f"{mean_length:.0f} tokens): "
          f"{baseline_rate:.2f} tunes/s, {baseline_tunes * mean_length / baseline_s:,.0f} tokens/s "
          f"({baseline_cpu_per_token * mean_length * 1e3:.1f} CPU ms a tune); "
          f"ratio {batched_rate / baseline_rate:.1f}x (target >= 20x)")
    # the whole of generate: validation, the tunebook and a MIDI file per tune
    full_count = min(count, 200)
    started = time.perf_counter()
    result = generate(ComposeOptions(seed=10_000, model=str(model), out=str(work / "generate"),
                                     force=True, formats=["abc", "mid"]), full_count, novelty=None)
    full_s = time.perf_counter() - started
    print(f"generate -n {full_count} with files (tunebook, MIDI per tune, summary): {full_s:.1f} s, "
          f"{len(result.tunes) / full_s:.1f} tunes/s, {sum(t.report.valid for t in result.tunes)} valid")
    return {"n": count, "workers": workers, "batched_s": round(batched_s, 3), "batched_cpu_s": round(batched_cpu, 2),
            "tunes_per_s": round(batched_rate, 2),
            "tokens_per_s": round(tokens / batched_s), "mean_tokens_per_tune": round(mean_length, 1),
            "made": len(made), "torch_one_at_a_time_tunes_per_s": round(baseline_rate, 3),
            "torch_tokens_per_s_runs": [round(rate) for rate in baseline_token_rates],
            "torch_baseline_tunes": baseline_tunes, "speedup": round(batched_rate / baseline_rate, 2),
            "torch_cpu_ms_per_tune": round(baseline_cpu_per_token * mean_length * 1e3, 2),
            "cpu_ms_per_tune": round(batched_cpu / max(len(made), 1) * 1e3, 2),
            "generate_with_files_n": full_count,
            "generate_with_files_tunes_per_s": round(len(result.tunes) / full_s, 2)}


# --- 3. per-token latency at batch 1 ---------------------------------------------------------------


class FolkRnnSampler:
    """folk-rnn's NumPy sampler (IraKorshunova/folk-rnn, as folkrnn.org ran it), rewritten: a one-hot
    input, per layer separate input and state matrices for each of the four gates, sigmoid and tanh
    as plain NumPy expressions, the softmax with temperature and ``rng.choice``."""

    def __init__(self, weights: dict, layers: int, hidden: int, dtype=np.float64) -> None:
        # folk-rnn trained with Theano's floatX = float64, so its pickled parameters, and with them
        # its NumPy sampler, are float64
        sigmoid_order = {"i": 0, "f": 1, "c": 2, "o": 3}  # torch's gate blocks: i, f, g (cell), o
        self.layers, self.hidden = layers, hidden
        self.W_x, self.W_h, self.b = [], [], []
        embedding = weights["embedding.weight"]
        for layer in range(layers):
            w_ih = weights[f"lstm.{layer}.weight_ih_l0"]
            w_hh = weights[f"lstm.{layer}.weight_hh_l0"]
            bias = weights[f"lstm.{layer}.bias_ih_l0"] + weights[f"lstm.{layer}.bias_hh_l0"]
            gates_x, gates_h, gates_b = {}, {}, {}
            for gate, k in sigmoid_order.items():
                rows = slice(k * hidden, (k + 1) * hidden)
                x_part = w_ih[rows].T  # (inputs, H)
                if layer == 0:  # folk-rnn's first layer reads a one-hot vector: (vocab, H)
                    x_part = embedding @ x_part
                gates_x[gate] = np.ascontiguousarray(x_part, dtype)
                gates_h[gate] = np.ascontiguousarray(w_hh[rows].T, dtype)
                gates_b[gate] = bias[rows].astype(dtype)
            self.W_x.append(gates_x)
            self.W_h.append(gates_h)
            self.b.append(gates_b)
        self.W_out = np.ascontiguousarray(weights["head.weight"].T, dtype)
        self.b_out = weights["head.bias"].astype(dtype)
        self.dtype = dtype
        self.vocab = self.W_out.shape[1]

    def tokens(self, steps: int, seed: int = 0, temperature: float = 1.0) -> float:
        """Sample ``steps`` tokens; returns the seconds it took."""
        sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731 - as folk-rnn wrote it
        rng = np.random.RandomState(seed)
        h = [np.zeros(self.hidden, self.dtype) for _ in range(self.layers)]
        c = [np.zeros(self.hidden, self.dtype) for _ in range(self.layers)]
        token = 1
        started = time.perf_counter()
        for _ in range(steps):
            x = np.zeros(self.vocab, dtype=np.int8)
            x[token] = 1
            for j in range(self.layers):
                Wx, Wh, b = self.W_x[j], self.W_h[j], self.b[j]
                i_t = sigmoid(np.dot(x, Wx["i"]) + np.dot(h[j], Wh["i"]) + b["i"])
                f_t = sigmoid(np.dot(x, Wx["f"]) + np.dot(h[j], Wh["f"]) + b["f"])
                c_t = f_t * c[j] + i_t * np.tanh(np.dot(x, Wx["c"]) + np.dot(h[j], Wh["c"]) + b["c"])
                o_t = sigmoid(np.dot(x, Wx["o"]) + np.dot(h[j], Wh["o"]) + b["o"])
                h_t = o_t * np.tanh(c_t)
                x = h_t
                c[j], h[j] = c_t, h_t
            logits = (np.dot(x, self.W_out) + self.b_out) / temperature
            expx = np.exp(logits - logits.max())
            probabilities = expx / expx.sum()
            token = rng.choice(self.vocab, p=probabilities)
        return time.perf_counter() - started


def ours_per_token(engine, steps: int, seed: int = 0) -> float:
    """The NumPy engine's step with the same sampling as the baseline (softmax, a draw): seconds."""
    rng = np.random.default_rng(seed)
    state = engine.init_state(1)
    token = 1
    started = time.perf_counter()
    for _ in range(steps):
        logits, state = engine.step(token, state)
        z = logits[0].astype(np.float64)
        p = np.exp(z - z.max())
        cdf = np.cumsum(p)
        token = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        token = min(token, len(cdf) - 1)
    return time.perf_counter() - started


def latency_figure(model: Path, steps: int) -> dict:
    from threadpoolctl import ThreadpoolController

    from folkrnn.checkpoint import load_model

    checkpoint = load_model(model)
    config = checkpoint.model_config
    if (config["layers"], config["hidden_size"]) != (3, 512):  # the figure is for a 3x512 model
        from folkrnn.checkpoint import expected_shapes
        from folkrnn.infer import NumpyLSTM

        config = dict(config, layers=3, hidden_size=512, embedding_size=256, features="", feature_sizes=[])
        rng = np.random.default_rng(1)
        weights = {name: rng.normal(0, 0.08, shape).astype(np.float32)
                   for name, shape in expected_shapes(config).items()}
        engine = NumpyLSTM(weights)
    else:
        weights, engine = checkpoint.weights, checkpoint.engine()
    baseline = FolkRnnSampler(weights, 3, 512)  # float64, as folk-rnn ran it
    baseline32 = FolkRnnSampler(weights, 3, 512, np.float32)  # the same code on float32 weights
    controller = ThreadpoolController()
    out = {}
    for label, threads in (("1 BLAS thread", 1), ("default BLAS threads", None)):
        limit = controller.limit(limits=threads, user_api="blas") if threads else None
        try:
            ours_per_token(engine, 20)
            baseline.tokens(20)
            ours, base, base32 = [], [], []
            for _ in range(3):  # alternately, so that a busy moment hits all three
                ours.append(ours_per_token(engine, steps) / steps)
                base.append(baseline.tokens(steps) / steps)
                base32.append(baseline32.tokens(steps) / steps)
            ours_s, base_s, base32_s = min(ours), min(base), min(base32)
        finally:
            if limit is not None:
                limit.restore_original_limits()
        print(f"per token at batch 1, 3x512, {label}: NumPy engine {ours_s * 1e3:.3f} ms; folk-rnn's "
              f"NumPy sampler {base_s * 1e3:.3f} ms (float64, as folk-rnn ran it; {base32_s * 1e3:.3f} ms "
              f"on float32 weights); ratio {ours_s / base_s:.2f} (target <= 0.5), {ours_s / base32_s:.2f} "
              "against float32")
        key = "one_thread" if threads else "default_threads"
        out[key] = {"ours_ms": round(ours_s * 1e3, 4), "folk_rnn_ms": round(base_s * 1e3, 4),
                    "folk_rnn_float32_ms": round(base32_s * 1e3, 4), "ratio": round(ours_s / base_s, 3),
                    "ratio_float32": round(ours_s / base32_s, 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="tunes to generate together")
    parser.add_argument("--repeats", type=int, default=5, help="runs of compose and of import torch")
    parser.add_argument("--baseline-tunes", type=int, default=10, help="tunes the torch baseline makes")
    parser.add_argument("--steps", type=int, default=400, help="tokens timed for the per-token latency")
    parser.add_argument("--model", default=None, help="a model directory (default: the shipped "
                        "model, else random weights of its shape); the latency figure is always 3x512")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats, args.baseline_tunes, args.steps = 40, 2, 2, 60
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model, described = model_directory(work, args.model)
        print(f"model: {described}")
        print(f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start")
        figures = {"model": described}
        figures["compose"] = compose_figure(model, work, args.repeats)
        figures["latency_batch_1"] = latency_figure(model, args.steps)
        figures["generate"] = generate_figure(model, args.n, args.baseline_tunes, work)
        figures["load_average_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
