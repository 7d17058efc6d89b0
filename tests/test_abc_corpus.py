"""The ABC core on real collections: abc2midi agreement on a fixed sample, the tokenizer's round
trip over every collection folkrnn knows (the default corpus and Essen), and fuzzing with
mutations of real tunes."""

from __future__ import annotations

import random
from functools import lru_cache

import pytest

from folkrnn.abc import detokenize, parse, read_text, split_tunebook, tokenize
from folkrnn.corpus import COLLECTIONS, DEFAULT_COLLECTIONS, music21_corpus_dir
from folkrnn.errors import FolkError
from folkrnn.reference import abc2midi_available, abc2midi_notes, compare_notes


@lru_cache(maxsize=1)
def corpus_tunes() -> tuple[tuple[str, str], ...]:
    """(label, text) of every tune of every known collection (the default corpus first, then
    Essen, which the tokenizer must still read), in a fixed order."""
    root = music21_corpus_dir()
    tunes = []
    for collection in COLLECTIONS:
        for path in sorted((root / collection.name).glob("*.abc")):
            for tune in split_tunebook(read_text(path), str(path)):
                tunes.append((f"{collection.name}/{path.name} {tune.label}", tune.text))
    return tuple(tunes)


def sample(count: int, seed: int) -> list[tuple[str, str]]:
    return random.Random(seed).sample(list(corpus_tunes()), count)


@pytest.mark.skipif(not abc2midi_available(), reason="abc2midi (Debian abcmidi) is not installed")
def test_abc2midi_agreement_on_a_fixed_sample() -> None:
    """Our unfolded notes equal abc2midi's, pitch and onset, on 300 corpus tunes (>= 99%)."""
    tunes = sample(300, seed=2026)
    identical, different = 0, []
    for label, text in tunes:
        try:
            reference = abc2midi_notes(text)
        except FolkError:
            continue  # a tune abc2midi cannot play (e.g. K:H) is not counted
        try:
            ours = [(n.onset, n.pitch) for n in parse(text).unfold() if not n.grace]
        except FolkError as error:
            different.append(f"{label}: {error}")
            continue
        message = compare_notes(ours, reference)
        if message is None:
            identical += 1
        else:
            different.append(f"{label}: {message}")
    assert identical + len(different) >= 295
    assert identical / (identical + len(different)) >= 0.99, "\n".join(different)


@pytest.mark.slow
def test_round_trip_over_the_whole_corpus() -> None:
    """detokenize(tokenize(x)) tokenises to the same tokens, for every tune that tokenises."""
    tokenised = failures = 0
    problems = []
    for label, text in corpus_tunes():
        try:
            tokens = tokenize(text)
        except FolkError:
            continue
        tokenised += 1
        again = tokenize(detokenize(tokens))
        if again != tokens:
            failures += 1
            problems.append(label)
    assert tokenised > 12_800
    assert failures == 0, problems[:10]


def test_default_corpus_is_a_part_of_the_tunes_checked() -> None:
    """The tunes above cover the default corpus (dance music) and Essen beside it."""
    names = {label.split("/", 1)[0] for label, _ in corpus_tunes()}
    assert names == {collection.name for collection in COLLECTIONS}
    default = [label for label, _ in corpus_tunes()
               if label.split("/", 1)[0] in {c.name for c in DEFAULT_COLLECTIONS}]
    assert 4_300 < len(default) < 4_600  # O'Neill's, Ryan's, Aird's, misc: 4,433 X: lines


_MUTATIONS = "|:[]{}()<>^_=,'/0123456789zZxXABCDEFGabcdefg-~.!+\"%\\&K: \n\x00\xe9"


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 8)):
        action = rng.random()
        at = rng.randrange(len(chars) + 1)
        if action < 0.4:
            chars.insert(at, rng.choice(_MUTATIONS))
        elif action < 0.7 and chars:
            del chars[min(at, len(chars) - 1)]
        elif action < 0.9 and chars:
            chars[min(at, len(chars) - 1)] = rng.choice(_MUTATIONS)
        else:  # cut the tune short
            chars = chars[:at]
    return "".join(chars)


def test_fuzz_only_folk_errors_escape() -> None:
    """Random mutations of real tunes: every call succeeds or raises FolkError, nothing else."""
    rng = random.Random(7)
    tunes = sample(400, seed=11)
    outcomes = {"ok": 0, "error": 0}
    for _, text in tunes:
        for _ in range(5):
            mutant = mutate(text, rng)
            for function in (tokenize, lambda t: parse(t).unfold(),
                             lambda t: detokenize(tokenize(t))):
                try:
                    function(mutant)
                    outcomes["ok"] += 1
                except FolkError as error:
                    assert "\n" not in str(error)
                    outcomes["error"] += 1
    # both outcomes happen: the fuzzer reaches the error paths and the lenient ones
    assert outcomes["ok"] > 100 and outcomes["error"] > 100
