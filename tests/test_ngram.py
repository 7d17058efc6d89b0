"""The Kneser-Ney baseline: probabilities worked out by hand on a toy corpus, exact normalisation,
agreement with a plain recursive implementation, and the tokens it scores."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from folkrnn.errors import CorpusError, OptionError
from folkrnn.ngram import fit_ngram

TOY = [["<s>", "a", "b", "</s>"], ["<s>", "a", "a", "</s>"]]


def test_bigram_probabilities_worked_out_by_hand():
    """Bigrams: <s>a x2, ab, b</s>, aa, a</s>. Counts of counts n1 = 4, n2 = 1, so D2 = 4/6 = 2/3.
    Continuation counts N1+(.w): a 2 (<s>a, aa), b 1 (ab), </s> 2 (b</s>, a</s>), 5 in all;
    n1 = 1, n2 = 2, so D1 = 1/5. With 3 types over a vocabulary of 3:
    P1(a) = (2 - 1/5)/5 + (1/5)(3/5)(1/3) = 0.36 + 0.04 = 0.40; P1(b) = 0.16 + 0.04 = 0.20;
    P1(</s>) = 0.40.
    After a (c(a.) = 3, 3 types): P(b|a) = (1 - 2/3)/3 + (2/3)(3/3) P1(b) = 1/9 + 2/15 = 11/45.
    After <s> (c = 2, 1 type): P(a|<s>) = (2 - 2/3)/2 + (2/3)(1/2)(0.4) = 2/3 + 2/15 = 0.8.
    After b (c = 1, 1 type): P(</s>|b) = (1 - 2/3) + (2/3)(0.4) = 1/3 + 4/15 = 0.6."""
    model = fit_ngram(TOY, order=2)
    assert model.orders[1].discount == pytest.approx(2 / 3)
    assert model.orders[0].discount == pytest.approx(1 / 5)
    assert model.probability([], "a") == pytest.approx(0.8)  # the context is <s>
    assert model.probability(["<s>", "a"], "b") == pytest.approx(11 / 45)
    assert model.probability(["<s>", "a"], "a") == pytest.approx(1 / 9 + (2 / 3) * 0.4)
    assert model.probability(["<s>", "a", "b"], "</s>") == pytest.approx(0.6)
    assert model.probability(["<s>", "a", "b"], "b") == pytest.approx((2 / 3) * 0.2)
    expected = -(math.log(0.8) + math.log(11 / 45) + math.log(0.6)) / 3
    assert model.cross_entropy([TOY[0]]) == pytest.approx(expected)


def test_unigram_with_an_unseen_vocabulary_token():
    """Order 1 with a vocabulary of 4 (c never seen): continuation counts do not exist at order
    1 (no lower order feeds it), so it uses raw token counts: a 3, b 1, </s> 2, total 6; n1 = 1
    (b), n2 = 1 (</s>), D1 = 1/3; 3 types. P(c) = (1/3)(3/6)(1/4) = 1/24; P(a) = (3 - 1/3)/6 + 1/24."""
    model = fit_ngram(TOY, order=1, vocabulary=["c"])
    assert model.orders[0].discount == pytest.approx(1 / 3)
    assert model.probability([], "c") == pytest.approx(1 / 24)
    assert model.probability(["<s>", "b"], "a") == pytest.approx((3 - 1 / 3) / 6 + 1 / 24)
    assert sum(model.distribution([]).values()) == pytest.approx(1.0)


def random_corpus(seed: int, tunes: int = 60) -> list[list[str]]:
    rng = random.Random(seed)
    alphabet = ["c", "d", "e", "f", "g", "2", "|", "/2"]
    out = []
    for _ in range(tunes):
        body = []
        for _ in range(rng.randrange(1, 30)):
            body.append(rng.choice(alphabet[:3]) if body and body[-1] == "|" else rng.choice(alphabet))
        out.append(["<s>", "M:6/8", *body, "</s>"])
    return out


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_context_sums_to_one_over_the_vocabulary(order):
    train = random_corpus(0)
    model = fit_ngram(train, order=order, vocabulary=["K:Cmaj", "^f"])
    rng = random.Random(order)
    for _ in range(25):
        tune = rng.choice(train + random_corpus(1, 5))
        cut = rng.randrange(1, len(tune))
        distribution = model.distribution(tune[:cut])
        assert set(distribution) == set(model.vocabulary) and "<s>" not in distribution
        assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-12)
        assert min(distribution.values()) > 0


def reference_probability(train: list[list[str]], order: int, vocabulary: set[str], context, token):
    """Interpolated Kneser-Ney written out directly from its definition, with dictionaries."""
    padded = [["<s>"] * (order - 2) + t if order > 1 else t[1:] for t in train]
    counts = [defaultdict(int) for _ in range(order + 1)]  # counts[k][gram]
    for seq in padded:
        for i in range(len(seq) - order + 1):
            gram = tuple(seq[i:i + order])
            if gram[-1] != "<s>":
                counts[order][gram] += 1
    for k in range(order - 1, 0, -1):  # continuation counts from distinct (k+1)-grams
        for gram in counts[k + 1]:
            counts[k][gram[1:]] += 1

    def discount(k):
        n1 = sum(1 for v in counts[k].values() if v == 1)
        n2 = sum(1 for v in counts[k].values() if v == 2)
        return n1 / (n1 + 2 * n2) if n1 else 0.5

    history = (["<s>"] * order + list(context))[-(order - 1):] if order > 1 else []

    def p(k):
        if k == 0:
            return 1 / len(vocabulary)
        g = tuple(history[len(history) - (k - 1):]) if k > 1 else ()
        total = sum(v for gram, v in counts[k].items() if gram[:-1] == g)
        types = sum(1 for gram in counts[k] if gram[:-1] == g)
        lower = p(k - 1)
        if total == 0:
            return lower
        d = discount(k)
        return max(counts[k].get(g + (token,), 0) - d, 0) / total + d * types / total * lower

    return p(order)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_matches_a_plain_implementation_of_the_definition(order):
    train = random_corpus(3, tunes=25)
    vocabulary = {t for tune in train for t in tune} - {"<s>"}
    model = fit_ngram(train, order=order)
    rng = random.Random(5)
    for _ in range(30):
        tune = rng.choice(train)
        cut = rng.randrange(1, len(tune))
        token = rng.choice(sorted(vocabulary))
        expected = reference_probability(train, order, vocabulary, tune[:cut], token)
        assert model.probability(tune[:cut], token) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_scores_every_token_after_the_first_and_learns():
    train = random_corpus(0)
    model = fit_ngram(train, order=3)
    test = random_corpus(9, tunes=10)
    # the mean over exactly the tokens after <s>, </s> included
    by_hand = []
    for tune in test:
        for cut in range(1, len(tune)):
            by_hand.append(-math.log(model.probability(tune[:cut], tune[cut])))
    assert model.cross_entropy(test) == pytest.approx(sum(by_hand) / len(by_hand))
    assert model.token_count(test) == len(by_hand)
    # more context helps on patterned data: bar lines are followed by c, d or e only
    assert fit_ngram(train, order=3).cross_entropy(test) < fit_ngram(train, order=1).cross_entropy(test)


def test_bad_input():
    with pytest.raises(CorpusError):
        fit_ngram([])
    with pytest.raises(OptionError):
        fit_ngram(TOY, order=0)
    model = fit_ngram(TOY, order=2)
    with pytest.raises(OptionError, match="'z' is not in the n-gram model's vocabulary"):
        model.cross_entropy([["<s>", "z", "</s>"]])
