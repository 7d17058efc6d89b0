"""Choosing tokens: seeded, batch-independent draws, and the strategies (temperature, top-k, top-p, greedy).

Nothing here knows what the tokens mean: a constraint (the ABC grammar, the MIDI-event guard) gives
the masks, and :func:`choose_tokens` picks one allowed token per row.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["uniforms", "choose_tokens", "rounding_noise", "one_blas_thread", "NOISE"]

# How far the logits of a batched computation may differ from those of the same row on its own,
# relative to the largest logit (a different BLAS kernel sums in another order): measured at most
# 9e-7 over 1,000 steps (3x512 and small models); the reproducibility guard allows for 4x that.
NOISE = _NOISE = 4e-6


# ---------------------------------------------------------------------------------------------
# Random numbers: counter-based, one stream per seed

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniforms(seeds, steps) -> np.ndarray:
    """Uniform draws in [0, 1), draw ``steps[i]`` of the stream of ``seeds[i]``: a hash of the pair,
    so the same (seed, step) gives the same number on every machine, in any batch."""
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    steps = np.asarray(steps, dtype=np.uint64).reshape(-1)
    with np.errstate(over="ignore"):
        x = _mix(seeds * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019))
        x = _mix(x ^ (steps * np.uint64(0xD1B54A32D192ED03) + np.uint64(1)))
    return (x >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


# ---------------------------------------------------------------------------------------------
# Choosing tokens


def choose_tokens(logits: np.ndarray, masks: np.ndarray, config, seeds: np.ndarray,
            steps: np.ndarray, noise: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick a token per row: (ids, log-probabilities, fragile).

    The allowed tokens are ranked by probability (equal ones by id); top-k keeps the first k,
    top-p the fewest whose probability reaches p, and the draw u (:func:`uniforms`) takes the token
    whose share of the ranked cumulative probability holds u. Ranking first keeps the unlikely
    tokens together at the end of the cumulative probability, where rounding barely moves it.

    ``noise`` bounds, per row, how far the float rounding of a batch can move each tempered logit
    (0 for the computation on its own). A decision it could change is flagged fragile: a draw so
    near a boundary of the cumulative probability that the boundary could cross it (a boundary at c
    moves at most ``2 c (1 - c) noise``), the drawn token and the next or previous one by rank less
    than ``2 noise`` apart (rounding could swap them, and with them the token at the drawn rank: the
    only swap that matters, since sorted values move no more than the values), an argmax between
    two such logits, or a top-p cut that rounding could move (to fewer or more tokens) when the draw
    would not take the same rank, as safely, with every cut it could move to.
    """
    rows, size = logits.shape
    allowed = keep = np.maximum(np.count_nonzero(masks, axis=1), 1)  # tokens with any probability
    # the allowed tokens come first in every row: the columns after the most any row allows are
    # all -inf (weight 0) and are left out of the work below (greedy sums them all: a pairwise sum
    # rounds by its length)
    width = int(keep.max()) if config.strategy != "greedy" else size
    order, values = _rank(logits, masks, width)
    ranked = values.astype(np.float64)  # (B, width) descending
    if config.temperature != 1.0:
        ranked /= config.temperature
    size = width
    index = np.arange(rows)
    delta = np.broadcast_to(np.asarray(noise, np.float64), (rows,))
    noisy = bool(delta.any())

    def close(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # two logits rounding could swap
        with np.errstate(invalid="ignore"):
            return np.isfinite(b) & (a - b < 2 * delta)

    def sensitive(c: np.ndarray, distance: np.ndarray) -> np.ndarray:  # a boundary rounding could move past
        return distance <= 2 * c * (1 - c) * delta

    fragile = np.zeros(rows, bool)
    if config.strategy == "greedy":
        if size > 1:
            fragile = close(ranked[:, 0], ranked[:, 1])
        shifted = ranked - ranked[:, :1]
        logp = -np.log(np.exp(shifted).sum(axis=1))
        return order[:, 0], logp, fragile
    columns = np.arange(size)[None, :]
    if config.top_k and config.top_k < size:
        keep = np.minimum(keep, config.top_k)
    weights = np.exp(ranked - ranked[:, :1])  # (B, V), ranked; 0 where not allowed
    if config.top_k and config.top_k < size:
        weights *= columns < keep[:, None]
    cumulative = np.cumsum(weights, axis=1)
    total = cumulative[index, keep - 1]
    cuts = None  # the rows whose top-p cut rounding could move: (rows, before the cut's cumulative, cuts)
    if config.top_p < 1.0:
        goal = config.top_p * total
        kept = np.minimum((cumulative < goal[:, None]).sum(axis=1) + 1, keep)
        if noisy:
            # the cuts rounding could give: from the first share that could reach p to the first
            # that surely does
            with np.errstate(invalid="ignore", divide="ignore"):
                share = cumulative / total[:, None]
            window = 2 * share * (1 - share) * delta[:, None]
            fewest = np.minimum(np.minimum((share + window < config.top_p).sum(axis=1) + 1, keep), kept)
            most = np.maximum(np.minimum((share - window <= config.top_p).sum(axis=1) + 1, keep), kept)
            moved = np.flatnonzero(fewest < most)
            if moved.size:
                cuts = (moved, cumulative[moved], fewest[moved], most[moved])
        keep = kept
        weights *= columns < keep[:, None]
        cumulative = np.cumsum(weights, axis=1)
        total = cumulative[index, keep - 1]
    u = uniforms(seeds, steps)
    position = np.minimum((cumulative <= (u * total)[:, None]).sum(axis=1), keep - 1)
    low = np.where(position > 0, cumulative[index, np.maximum(position - 1, 0)] / total, 0.0)
    high = cumulative[index, position] / total
    fragile |= (position > 0) & sensitive(low, u - low)
    fragile |= (position < keep - 1) & sensitive(high, high - u)
    fragile |= (position > 0) & close(ranked[index, np.maximum(position - 1, 0)], ranked[index, position])
    # the next token by rank, kept or cut (by top-k or top-p): a swap puts another token at this rank
    fragile |= (position < allowed - 1) & close(ranked[index, position],
                                               ranked[index, np.minimum(position + 1, size - 1)])
    if cuts is not None:
        for row, before, fewest, most in zip(*cuts):
            if not fragile[row]:
                fragile[row] = _cut_moves_draw(before, int(fewest), int(most), float(u[row]),
                                               int(position[row]), float(delta[row]))
    logp = np.log(weights[index, position] / total)
    return order[index, position], logp, fragile


def _cut_moves_draw(cumulative: np.ndarray, fewest: int, most: int, u: float, position: int, delta: float) -> bool:
    """Whether a draw ``u`` could take another rank than ``position`` with a top-p cut anywhere from
    ``fewest`` to ``most`` tokens (``cumulative``: the row's cumulative weights before the cut), or
    fall so near a boundary that rounding could move it."""
    for keep in range(fewest, most + 1):
        total = cumulative[keep - 1]
        at = min(int(np.count_nonzero(cumulative[:keep] <= u * total)), keep - 1)
        if at != position:
            return True
        low = cumulative[at - 1] / total if at > 0 else 0.0
        high = cumulative[at] / total
        if (at > 0 and u - low <= 2 * low * (1 - low) * delta) or \
                (at < keep - 1 and high - u <= 2 * high * (1 - high) * delta):
            return True
    return False


def _sortable(values: np.ndarray) -> np.ndarray:
    """float32 -> uint32 keys in the opposite order (the highest value has the lowest key)."""
    bits = (values + np.float32(0)).view(np.int32)  # + 0: -0.0 becomes 0.0, so the two tie
    ascending = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))  # int32 in the floats' order
    return (~ascending).view(np.uint32) ^ np.uint32(0x80000000)


def _unsortable(keys: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_sortable`."""
    ascending = ~((keys ^ np.uint32(0x80000000)).view(np.int32))
    return (ascending ^ ((ascending >> 31) & np.int32(0x7FFFFFFF))).view(np.float32)


_NO_TOKEN = np.uint64(int(_sortable(np.array([-np.inf], np.float32))[0]) | 1 << 32)  # after every allowed one
_ID_BITS = np.uint64(31)


def _rank(logits: np.ndarray, masks: np.ndarray, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the token ids by logit, highest first and equal ones by id, the allowed ones before
    the rest, and their logits (float32; -inf for the tokens not allowed): the first ``width``
    (default: all).

    One sort of 64-bit keys (not allowed, the logit's order, the id) does what a stable argsort of
    the float logits does, several times faster; everything around it is arithmetic, no masked
    selection (which is slow on random masks), and few temporary arrays (each a fresh allocation
    of a (B, V) block, which costs more than the arithmetic)."""
    rows, size = logits.shape
    keys = np.where(masks, _sortable(np.asarray(logits, np.float32)), _NO_TOKEN)  # (B, V) uint64
    keys <<= _ID_BITS
    keys |= np.arange(size, dtype=np.uint64)
    keys.sort(axis=1)
    keys = keys[:, :width]
    order = (keys & np.uint64((1 << 31) - 1)).astype(np.intp)
    return order, _unsortable((keys >> _ID_BITS).astype(np.uint32))


def rounding_noise(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Per row, how far a batch's float rounding may move the tempered logits (``noise`` of
    :func:`choose_tokens` for a batched step; 0 is right for a row computed on its own)."""
    return _NOISE * np.maximum(1.0, np.abs(logits).max(axis=1)) / temperature


_CONTROLLER = None


def one_blas_thread():
    """A context in which BLAS uses one thread: a batch of one runs faster so (its products are
    too small to share, and a busy machine makes waiting threads slow), and always the same way."""
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it, BLAS keeps its own threads
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
