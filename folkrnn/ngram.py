"""The n-gram baseline: an interpolated Kneser-Ney language model over tokens, small and exact.

A model's test loss means something only next to a baseline on the same tokens. This is the
classic interpolated Kneser-Ney estimate (Chen and Goodman 1998, section 3.5), with one absolute
discount per order, ``D = n1 / (n1 + 2 n2)`` from that order's counts of counts:

- highest order n, context ``h`` of n-1 tokens, raw counts ``c``:
  ``P(w|h) = max(c(hw) - D, 0) / c(h.) + D * N1+(h.) / c(h.) * P(w|h')``;
- lower orders, continuation counts ``N1+(.gw)`` (how many distinct tokens precede ``gw``):
  ``P(w|g) = max(N1+(.gw) - D, 0) / N1+(.g.) + D * N1+(g.) / N1+(.g.) * P(w|g')``;
- order 1 interpolates with the uniform distribution over the vocabulary, so every token of the
  vocabulary has a probability and the probabilities of each context sum to exactly 1;
- a context never seen at some order passes the lower order's distribution through unchanged.

Sequences are ``<s> ... </s>``; each is padded in front with n-2 more ``<s>`` so that every token
has a full context. Every token after the first ``<s>`` is predicted, ``</s>`` included, and none
is skipped: the same tokens the LSTM is scored on (``folkrnn.train.evaluate_loss``: targets are
``ids[1:]``), so the two cross-entropies compare directly.

n-grams are packed into 64-bit integers (``bits`` per token) and counted with NumPy, so fitting
the default corpus's 1.7M training tokens takes a few seconds and scoring is vectorised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from folkrnn.errors import CorpusError, OptionError

__all__ = ["NgramModel", "fit_ngram", "BOS", "EOS"]

BOS, EOS = "<s>", "</s>"
_NOT_PREDICTED = ("<s>", "<pad>")  # never a target: not in the distribution


@dataclass
class _Order:
    """Counts of one order k: n-grams (context + token) and contexts, as sorted packed keys."""

    gram_keys: np.ndarray  # sorted packed k-grams
    gram_counts: np.ndarray  # c(hw) (highest order) or N1+(.gw) (lower orders)
    context_keys: np.ndarray  # sorted packed (k-1)-gram contexts
    context_totals: np.ndarray  # c(h.) or N1+(.g.)
    context_types: np.ndarray  # N1+(h.): how many distinct tokens follow the context
    discount: float  # D of this order


@dataclass
class NgramModel:
    """A fitted interpolated Kneser-Ney model (see the module docstring). Use :func:`fit_ngram`."""

    order: int  # n
    vocabulary: tuple[str, ...]  # the tokens the distribution is over (no <s>, no <pad>)
    ids: dict[str, int]  # token -> id (1-based; <s> has its own id and is never predicted)
    bits: int  # bits per token in a packed key
    orders: list[_Order] = field(repr=False)  # orders[k - 1] holds order k, for k = 1..n
    unigram: np.ndarray = field(repr=False)  # P_1(w) for every id (0 for <s> and unused ids)

    # --- scoring ----------------------------------------------------------------------------

    def _encode(self, sequences: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(contexts, targets): every predicted token's n-1 ids of context, packed, and its id."""
        n, bits = self.order, self.bits
        bos = self.ids[BOS]
        contexts, targets = [], []
        for sequence in sequences:
            tokens = list(sequence)
            if not tokens or tokens[0] != BOS:
                tokens.insert(0, BOS)
            try:
                ids = [self.ids[token] for token in tokens]
            except KeyError as error:
                raise OptionError(f"token {error.args[0]!r} is not in the n-gram model's "
                                  "vocabulary (fit it with that vocabulary)") from None
            if any(token in _NOT_PREDICTED for token in tokens[1:]):
                raise OptionError("<s> or <pad> inside a sequence: only its first token may be <s>")
            # n-2 more <s> in front give every token a full context; with n = 1, <s> goes
            ids = [bos] * (n - 2) + ids if n > 1 else ids[1:]
            array = np.asarray(ids, dtype=np.int64)
            # window t: the n-1 tokens of context and the token predicted, (T, n)
            windows = np.lib.stride_tricks.sliding_window_view(array, n)
            if len(windows):
                shifts = bits * np.arange(n - 2, -1, -1, dtype=np.int64)
                contexts.append((windows[:, :-1] << shifts).sum(axis=1) if n > 1
                                else np.zeros(len(windows), np.int64))
                targets.append(windows[:, -1].copy())
        if not targets:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(contexts), np.concatenate(targets)

    def log_probs(self, contexts: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Natural-log probabilities of ``targets`` after packed ``contexts`` (see :meth:`_encode`)."""
        bits = self.bits
        probability = self.unigram[targets]
        for k in range(2, self.order + 1):
            level = self.orders[k - 1]
            width = bits * (k - 1)
            context = contexts & ((1 << width) - 1)  # the last k-1 tokens of the context
            gram = (context << bits) | targets
            total, types = _lookup(level.context_keys, context, level.context_totals, level.context_types)
            count = _lookup(level.gram_keys, gram, level.gram_counts)[0]
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            mixed = np.maximum(count - level.discount, 0.0) / safe \
                + level.discount * types / safe * probability
            probability = np.where(seen, mixed, probability)
        return np.log(probability)

    def _packed_context(self, context: Sequence[str]) -> int:
        """The last n-1 tokens of ``context`` (padded with <s> in front) packed into one integer."""
        history = [self.ids[t] for t in context]
        history = [self.ids[BOS]] * max(self.order - 1 - len(history), 0) + history
        history = history[len(history) - (self.order - 1):] if self.order > 1 else []
        packed = 0
        for token_id in history:
            packed = (packed << self.bits) | token_id
        return packed

    def probability(self, context: Sequence[str], token: str) -> float:
        """P(token | the tokens before it), context as tokens (earlier <s> padding is implied)."""
        packed = self._packed_context(context)
        return float(np.exp(self.log_probs(np.array([packed], np.int64),
                                           np.array([self.ids[token]], np.int64))[0]))

    def distribution(self, context: Sequence[str]) -> dict[str, float]:
        """P(w | context) for every token of the vocabulary (they sum to 1)."""
        packed = self._packed_context(context)
        targets = np.array([self.ids[token] for token in self.vocabulary], np.int64)
        values = np.exp(self.log_probs(np.full(len(targets), packed, np.int64), targets))
        return dict(zip(self.vocabulary, values.tolist()))

    def cross_entropy(self, sequences: Iterable[Sequence[str]]) -> float:
        """Mean negative log-probability, in nats per token, of every token after each sequence's
        ``<s>`` (``</s>`` included): the tokens the LSTM's test loss is taken on."""
        contexts, targets = self._encode(sequences)
        if not len(targets):
            raise OptionError("no tokens to score")
        return float(-self.log_probs(contexts, targets).mean())

    def token_count(self, sequences: Iterable[Sequence[str]]) -> int:
        """How many tokens :meth:`cross_entropy` scores in these sequences."""
        return sum(max(len(s) - (1 if s and s[0] == BOS else 0), 0) for s in sequences)


def _lookup(keys: np.ndarray, queries: np.ndarray, *values: np.ndarray) -> list[np.ndarray]:
    """For each query, its values where ``keys`` holds it, else 0 (keys sorted)."""
    if not len(keys):
        return [np.zeros(len(queries)) for _ in values]
    at = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    found = keys[at] == queries
    return [np.where(found, value[at], 0).astype(np.float64) for value in values]


def _discount(counts: np.ndarray) -> float:
    """``n1 / (n1 + 2 n2)`` from a count array (Ney, Essen and Kneser 1994); 0.5 if undefined."""
    n1 = int((counts == 1).sum())
    n2 = int((counts == 2).sum())
    if n1 == 0 or n1 + 2 * n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 1e-3), 0.999)


def _group(keys: np.ndarray, counts: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts of sorted distinct grams: (context keys, summed counts, number of grams)."""
    contexts = keys >> bits
    starts = np.flatnonzero(np.r_[True, contexts[1:] != contexts[:-1]]) if len(keys) else np.zeros(0, int)
    totals = np.add.reduceat(counts, starts) if len(keys) else np.zeros(0)
    types = np.diff(np.r_[starts, len(keys)])
    return contexts[starts], totals.astype(np.float64), types.astype(np.float64)


def fit_ngram(train_sequences: Iterable[Sequence[str]], order: int = 5,
              vocabulary: Iterable[str] | None = None) -> NgramModel:
    """Fit an interpolated Kneser-Ney ``order``-gram model on token sequences.

    Parameters
    ----------
    train_sequences
        Token sequences, each ``<s> ... </s>`` (a missing ``<s>`` is put in front).
    order
        n, at least 1.
    vocabulary
        Tokens the distribution is over, beyond those of the training sequences (give the LSTM's
        vocabulary so that test tokens unseen in training still get a probability). ``<s>`` and
        ``<pad>`` are never predicted and are left out.

    Raises
    ------
    CorpusError
        No tokens to learn from.
    OptionError
        An order below 1, or a vocabulary so large that n tokens do not fit in 63 bits.
    """
    if order < 1:
        raise OptionError(f"the n-gram order must be at least 1, not {order}")
    sequences = [list(s) if s and s[0] == BOS else [BOS, *s] for s in train_sequences]
    sequences = [s for s in sequences if len(s) > 1]
    if not sequences:
        raise CorpusError("no token sequences to fit the n-gram model on")
    tokens = set()
    for sequence in sequences:
        tokens.update(sequence)
    tokens.update(vocabulary or ())
    predicted = sorted(tokens - set(_NOT_PREDICTED))
    ids = {token: index + 2 for index, token in enumerate(predicted)}  # 0 unused, 1 is <s>
    ids[BOS] = 1
    bits = max(1, (len(ids) + 1).bit_length())
    if bits * order > 63:
        raise OptionError(f"{len(ids)} tokens need {bits} bits each: a {order}-gram does not fit "
                          "in 63 bits; lower the order")
    n = order
    padded = [np.asarray([1] * (n - 2) + [ids[t] for t in s], np.int64) for s in sequences]

    def grams(k: int) -> np.ndarray:
        """Every k-gram of the padded sequences ending on a predicted token, packed."""
        out = []
        for array in padded:
            if len(array) < k:
                continue
            windows = np.lib.stride_tricks.sliding_window_view(array, k)
            windows = windows[windows[:, -1] != 1]  # only n-grams ending on a predicted token
            shifts = bits * np.arange(k - 1, -1, -1, dtype=np.int64)
            out.append((windows << shifts).sum(axis=1))
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    orders: list[_Order] = []
    distinct_above: np.ndarray | None = None  # distinct (k+1)-grams, for continuation counts
    levels: dict[int, _Order] = {}
    for k in range(n, 0, -1):
        if k == n:
            keys, counts = np.unique(grams(k), return_counts=True)
        else:
            # N1+(.gw): distinct left extensions of gw = distinct (k+1)-grams ending in gw
            suffixes = distinct_above & ((1 << (bits * k)) - 1)
            keys, counts = np.unique(suffixes, return_counts=True)
        counts = counts.astype(np.float64)
        context_keys, totals, types = _group(keys, counts, bits)
        levels[k] = _Order(keys, counts, context_keys, totals, types, _discount(counts))
        distinct_above = keys
    orders = [levels[k] for k in range(1, n + 1)]

    # order 1: continuation counts interpolated with the uniform distribution over the vocabulary
    first = orders[0]
    size = len(predicted)
    unigram = np.zeros(len(ids) + 2, np.float64)
    total = first.context_totals.sum() if len(first.context_totals) else 0.0
    predicted_ids = np.array([ids[t] for t in predicted], np.int64)
    if total > 0:
        count = _lookup(first.gram_keys, predicted_ids, first.gram_counts)[0]
        types = float(len(first.gram_keys))
        unigram[predicted_ids] = np.maximum(count - first.discount, 0.0) / total \
            + first.discount * types / total / size
    else:
        unigram[predicted_ids] = 1.0 / size
    return NgramModel(order=n, vocabulary=tuple(predicted), ids=ids, bits=bits, orders=orders,
                      unigram=unigram)
