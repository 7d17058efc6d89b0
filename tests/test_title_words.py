"""Title words (folkrnn.abc.titles): the trie of a corpus' title words, and the titles a model writes
for itself made of them, while a given title, and a model folder without the words, are as before."""

from __future__ import annotations

import dataclasses
import random
import shutil

import numpy as np
import pytest

from folkrnn.abc.titles import WORDS_FILE, TitleTrie, corpus_title_words, read_words, title_text, trie_for, write_words
from folkrnn.errors import ModelError
from folkrnn.sample import AbcConstraint, Conditions, SampleConfig, _plan, sample_one, sample_tunes, title_tokens

SPACE = "\u2581"
TOKENS = ["<pad>", "<s>", "</s>", SPACE, *"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',.-()%",
          "R:reel", "R:jig", "M:4/4", "K:Cmaj", "|", "|:", ":|"]
ID = {token: index for index, token in enumerate(TOKENS)}


def ids(title: str) -> list[int]:
    return [ID["<s>"]] + [ID[SPACE if char == " " else char] for char in title]


def allowed(trie: TitleTrie, title: str, left: int = 60) -> set[str]:
    """The tokens allowed after ``title`` ("▁" for a space, "END" for the title's end)."""
    node = trie.node(ids(title))
    assert node >= 0, title
    mask = trie.mask(node, left)
    out = {TOKENS[i] for i in np.flatnonzero(mask) if len(TOKENS[i]) == 1}
    if mask[ID["R:reel"]]:
        assert mask[[ID["R:jig"], ID["M:4/4"], ID["|:"]]].all()  # every token that is not a title character
        out.add("END")
    return out


def words_of(title: str, words: set[str]) -> bool:
    """Whether every word of a title is one of ``words`` (the first also capitalised)."""
    return all(word in words or k == 0 and word[0].lower() + word[1:] in words
               for k, word in enumerate(title.split()))


# --- the words and the trie ------------------------------------------------------------------------


def test_corpus_title_words_are_the_titles_pieces_as_written():
    tunes = [["<s>", *"The", SPACE, *"Kesh", "R:jig", "M:6/8", "K:Cmaj", "|:", "G"],
             ["<s>", *"O'Neill's", SPACE, *"Reel", SPACE, "-", SPACE, *"Billy,", "R:reel", "K:Cmaj"],
             ["<s>", *"Over", SPACE, *"the", SPACE, *"Moor", "R:reel"],
             ["<s>", "R:reel", "M:4/4", "K:Cmaj"]]
    assert title_text(tunes[1]) == "O'Neill's Reel - Billy,"
    assert title_text(tunes[3]) == ""
    assert corpus_title_words(tunes) == sorted(["The", "Kesh", "O'Neill's", "Reel", "Billy,", "Over", "the", "Moor"])


def test_words_end_only_where_whole():
    trie = TitleTrie(["The", "Them", "Reel", "of"], TOKENS)
    assert len(trie) == 4
    assert allowed(trie, "") == {"T", "R", "O"}  # first words: capitalised ("of" -> "Of")
    assert allowed(trie, "Th") == {"e"}  # no end inside a word
    assert allowed(trie, "The") == {"m", SPACE, "END"}  # a whole word: a space, the end, or on to "Them"
    assert allowed(trie, "The ") == {"T", "R", "o"}  # later words as written: "of", not "Of"
    assert allowed(trie, "Of") == {SPACE, "END"}
    assert allowed(trie, "The of") == {SPACE, "END"}
    assert trie.node(ids("The Of")) == -1 and trie.node(ids("the")) == -1  # not words there


def test_apostrophes_punctuation_and_digits_follow_the_corpus():
    trie = TitleTrie(["O'Neill's", "Man's", "(The)", "Billy,", "55th.", "-", "100%", "Caf\u00e9"], TOKENS)
    assert len(trie) == 5  # "-" has no letter or digit; "%" and "é" are not title characters here
    assert allowed(trie, "O") == {"'"}
    assert allowed(trie, "O'Neill") == {"'"}
    assert allowed(trie, "O'Neill's") == {SPACE, "END"}
    assert "(" not in allowed(trie, "")  # a title begins with a letter or digit (the grammar's rule)
    assert "(" in allowed(trie, "Man's ")  # "(The)" is a later word
    assert allowed(trie, "Man's (The)") == {SPACE, "END"}
    assert allowed(trie, "Billy") == {","} and allowed(trie, "55th") == {"."}
    assert "-" not in allowed(trie, "Man's ") and "1" not in allowed(trie, "")


def test_no_dead_ends_within_the_title_length():
    trie = TitleTrie(["O'Neill's", "Reel", "A", "Fair"], TOKENS)
    assert allowed(trie, "", left=4) == {"R", "A", "F"}  # "O'Neill's" no longer fits
    assert allowed(trie, "", left=1) == {"A"}
    assert allowed(trie, "Reel", left=1) == {"END"}  # a space only where a word fits after it
    assert allowed(trie, "Reel", left=2) == {SPACE, "END"}
    assert allowed(trie, "Fa", left=1) == set()  # never reached: "F" is not allowed with fewer than 4 left
    assert allowed(trie, "", left=0) == {"END"}  # no word fits: no title, as the grammar allows
    # any walk, with any limit, ends with whole words within the limit
    words = ["The", "Reel", "of", "O'Neill's", "Billy,", "Them", "Man", "Mansion", "a", "X"]
    trie = TitleTrie(words, TOKENS)
    rng = random.Random(0)
    for _ in range(300):
        limit, title = rng.randrange(1, 30), ""
        while True:
            options = sorted(allowed(trie, title, limit - len(title)))
            assert options, (title, limit)
            choice = rng.choice(options)
            if choice == "END":
                break
            title += " " if choice == SPACE else choice
        assert len(title) <= limit and words_of(title, set(words)), (title, limit)


def test_the_trie_has_one_mask_a_node_and_is_made_once():
    trie = trie_for(("The", "Reel"), TOKENS)
    assert trie_for(("The", "Reel"), TOKENS) is trie
    node = trie.node(ids("The"))
    assert np.shares_memory(trie.mask(node, 60), trie.mask(node, 50))  # the precomputed row of its table
    assert trie.mask(node, 2) is trie.mask(node, 2)  # near the limit: worked out once


def test_the_word_file(tmp_path):
    assert read_words(tmp_path) is None
    write_words(tmp_path, ["O'Neill's", "Reel", "the"])
    assert (tmp_path / WORDS_FILE).read_text() == "O'Neill's\nReel\nthe\n"
    assert read_words(tmp_path) == ("O'Neill's", "Reel", "the")
    (tmp_path / WORDS_FILE).write_text("The Reel\n")
    with pytest.raises(ModelError, match="space"):
        read_words(tmp_path)
    (tmp_path / WORDS_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(ModelError, match="UTF-8"):
        read_words(tmp_path)


# --- the titles a model writes ---------------------------------------------------------------------


def test_train_writes_the_words_of_its_corpus_titles(tiny_model_dir, tiny_corpus, tiny):
    words = corpus_title_words(tiny_corpus.train)
    assert len(words) > 50
    assert read_words(tiny_model_dir) == tuple(words)
    assert tiny.engine.title_words == tuple(words)  # the engine carries them to the sampler


def test_untitled_tunes_write_titles_of_corpus_words(tiny):
    words = set(tiny.engine.title_words)
    tunes = sample_tunes(tiny.engine, tiny.vocabulary, list(range(24)))
    titles = [title_text(tune.tokens) for tune in tunes]
    assert all(tune.ok for tune in tunes)
    assert all(title and words_of(title, words) for title in titles), titles
    # without the words, the same model spells freely
    free = sample_tunes(tiny.engine, tiny.vocabulary, list(range(24)), config=SampleConfig(title_words=False))
    assert not all(words_of(title_text(tune.tokens), words) for tune in free)
    # beam search keeps to the words too
    beam = sample_one(tiny.engine, tiny.vocabulary, 0, config=SampleConfig(strategy="beam", beam_width=2))
    assert words_of(title_text(beam.tokens), words)


def test_titles_from_words_are_reproducible(tiny):
    seeds = list(range(10))
    batched = sample_tunes(tiny.engine, tiny.vocabulary, seeds)
    assert [t.tokens for t in sample_tunes(tiny.engine, tiny.vocabulary, seeds, batch_size=3)] == \
        [t.tokens for t in batched]
    assert sample_one(tiny.engine, tiny.vocabulary, 4).tokens == batched[4].tokens


def test_a_given_title_is_untouched(tiny):
    title = "Blorpf of the Unheard Zzk"
    tune = sample_one(tiny.engine, tiny.vocabulary, 1, conditions=Conditions(title=title))
    forced = "".join(title_tokens(title, tiny.vocabulary)[0]).replace(SPACE, " ")
    assert tune.ok and title_text(tune.tokens) == forced and forced.split()[0] == "Blorpf"
    off = sample_one(tiny.engine, tiny.vocabulary, 1, conditions=Conditions(title=title),
                     config=SampleConfig(title_words=False))
    assert off.tokens == tune.tokens


def test_a_model_without_the_words_is_as_before(tiny_model_dir, tiny, tmp_path):
    from folkrnn.checkpoint import load_model

    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    (bare / WORDS_FILE).unlink()
    model = load_model(bare)
    assert model.title_words is None and model.engine().title_words is None
    seeds = list(range(8))
    before = sample_tunes(model.engine(), model.vocabulary, seeds)
    assert [t.tokens for t in before] == [t.tokens for t in sample_tunes(
        tiny.engine, tiny.vocabulary, seeds, config=SampleConfig(title_words=False))]


def test_requests_with_and_without_words_are_not_of_one_kin(tiny):
    """A loop shared by requests (folkrnn.decode.shared) calls one constraint for all rows of one kin."""
    config = SampleConfig()
    words = _plan(tiny.vocabulary, Conditions(), config, title_words=tiny.engine.title_words)
    plain = _plan(tiny.vocabulary, Conditions(), dataclasses.replace(config, title_words=False),
                  title_words=tiny.engine.title_words)
    assert words.titles is not None and plain.titles is None
    assert AbcConstraint(words, config, tiny.vocabulary).kin() != AbcConstraint(plain, config, tiny.vocabulary).kin()
    titled = _plan(tiny.vocabulary, Conditions(title="The Kesh"), config, title_words=tiny.engine.title_words)
    assert titled.titles is None


def test_the_shipped_model_writes_titles_of_its_words():
    from folkrnn.checkpoint import SHIPPED, load_model

    if not (SHIPPED / "abc" / WORDS_FILE).is_file():
        pytest.skip("the shipped ABC model has no title words")
    model = load_model(SHIPPED / "abc")
    words = set(model.title_words)
    assert 1000 < len(words) < 20000
    tunes = sample_tunes(model.engine(), model.vocabulary, list(range(1, 13)))
    assert all(tune.ok and words_of(title_text(tune.tokens), words) for tune in tunes)
