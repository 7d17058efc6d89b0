"""Title words (folkrnn.abc.titles): the trie of a corpus' title words and their order, and the titles a
model writes for itself made of them, while a given title, and a model folder without the titles (only
the older word file, or neither), are as before."""

from __future__ import annotations

import dataclasses
import random
import shutil

import numpy as np
import pytest

from folkrnn.abc.titles import (
    TITLES_FILE,
    WORDS_FILE,
    TitleTrie,
    corpus_title_rhythms,
    corpus_title_words,
    corpus_titles,
    read_title_file,
    read_titles,
    read_words,
    title_text,
    trie_for,
    words_of_titles,
    write_titles,
    write_words,
)
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
    state = trie.state(ids(title))
    assert state >= 0, title
    mask = trie.mask(state, left)
    out = {TOKENS[i] for i in np.flatnonzero(mask) if len(TOKENS[i]) == 1}
    if mask[ID["R:reel"]]:
        assert mask[[ID["R:jig"], ID["M:4/4"], ID["|:"]]].all()  # every token that is not a title character
        out.add("END")
    return out


def words_of(title: str, words: set[str]) -> bool:
    """Whether every word of a title is one of ``words`` (the first also capitalised)."""
    return all(word in words or k == 0 and word[0].lower() + word[1:] in words
               for k, word in enumerate(title.split()))


def pieces(title: str) -> list[str]:
    return [word for word in title.split() if any(char.isalnum() for char in word)]


def in_order(title: str, titles, order: int = 1, joins: int = 0) -> bool:
    """Whether a title's words come in an order the corpus ``titles`` allow: a first word that begins
    one (capitalised), each next one that follows the word before it in one (that one case-folded),
    a last word that ends one; with ``order`` 2, also its last two words (or its only one) those
    that end one, and each next word one that follows the two before it in one (the second word:
    after the first at a title's start), but for at most ``joins`` of them."""
    sequences = [words for words in map(pieces, titles) if words]
    words = pieces(title)
    ordered = not words or (
        words[0] in {s[0][0].upper() + s[0][1:] for s in sequences}
        and words[-1].lower() in {s[-1].lower() for s in sequences}
        and all((a.lower(), b) in {(x.lower(), y) for s in sequences for x, y in zip(s, s[1:])}
                for a, b in zip(words, words[1:])))
    if order == 1 or not ordered or not words:
        return ordered

    def fold(run):
        return tuple(word.lower() for word in run)

    marked = [("",) + tuple(s) for s in sequences]  # "" the title's start
    follows = {(fold(s[k - 2:k]), s[k]) for s in marked for k in range(2, len(s))}
    ends = {fold(s[-2:]) for s in marked}
    title_words = ("",) + tuple(words)
    steps = sum((fold(title_words[k - 2:k]), title_words[k]) not in follows for k in range(2, len(title_words)))
    return fold(title_words[-2:]) in ends and steps <= joins


def copies(title: str, titles) -> bool:
    """Whether a title is a whole one of ``titles`` (case-folded, word for word)."""
    return [word.lower() for word in pieces(title)] in [[word.lower() for word in pieces(t)] for t in titles]


def walk(trie: TitleTrie, rng: random.Random, limit: int) -> str:
    """A title made by choosing at random among what the trie allows, checking it never runs dry."""
    title = ""
    while True:
        options = sorted(allowed(trie, title, limit - len(title)))
        assert options, (title, limit)  # no dead ends
        choice = rng.choice(options)
        if choice == "END":
            return title
        title += " " if choice == SPACE else choice


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
    assert trie.state(ids("The Of")) == -1 and trie.state(ids("the")) == -1  # not words there


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
        limit = rng.randrange(1, 30)
        title = walk(trie, rng, limit)
        assert len(title) <= limit and words_of(title, set(words)), (title, limit)


# --- the order: an order-1 chain over the corpus titles' words --------------------------------------

ROADS = ["The Kesh", "The Road to Lisdoonvarna", "Over the Moor", "Road to Rio", "Reel of Tulloch",
         "The Reel - Billy,", "up the Hill", "'Twas on a Morning"]


def test_corpus_titles_are_the_distinct_titles_with_a_word():
    tunes = [["<s>", *"The", SPACE, *"Kesh", "R:jig"], ["<s>", *"The", SPACE, SPACE, *"Kesh", "R:jig"],
             ["<s>", "-", "R:reel"], ["<s>", "R:reel"], ["<s>", *"Abbey", SPACE, "-", SPACE, *"Reel", "R:reel"]]
    assert corpus_titles(tunes) == ["Abbey - Reel", "The Kesh"]
    assert words_of_titles(corpus_titles(tunes)) == ["Abbey", "Kesh", "Reel", "The"]


def test_a_title_begins_goes_on_and_ends_as_corpus_titles_do():
    trie = TitleTrie((), TOKENS, ROADS, order=1)
    assert len(trie) == 19  # the words as written ("the" and "The" two), not "-"
    assert allowed(trie, "") == {"T", "O", "R", "U"}  # first words, capitalised ("up" -> "Up"), not "'Twas"
    assert allowed(trie, "The") == {SPACE}  # no title ends with "the"
    # what follows "The" or "the" in any title, as written there: "Kesh", "Road", "Reel", "Moor", "Hill"
    assert allowed(trie, "The ") == allowed(trie, "Over the ") == {"K", "R", "M", "H"}
    assert allowed(trie, "The Road") == {SPACE} and allowed(trie, "The Road ") == {"t"}
    assert allowed(trie, "The Road to ") == {"L", "R"}
    assert allowed(trie, "The Road to Rio") == {"END"}  # nothing follows "Rio" in the corpus
    assert allowed(trie, "Over the Moor") == {"END"}
    assert allowed(trie, "The Reel") == {SPACE} and allowed(trie, "The Reel ") == {"o", "B"}  # the dash skipped
    assert allowed(trie, "The Reel Billy") == {","}
    assert allowed(trie, "Up the Moor") == {"END"}
    for off in ("The the", "Over The", "The Rio", "Kesh", "The Kesh Road", "The Reel -"):
        assert trie.state(ids(off)) == -1, off


def test_a_word_does_not_follow_itself():
    """"Row dow dow" must not teach the chain dow -> dow: that step writes "dow" until the title is full."""
    trie = TitleTrie((), TOKENS, ["Row dow dow", "Row the Boat", "Boat of the Reel"], order=1)
    assert allowed(trie, "Row dow") == {"END"}  # "dow" ends a title; nothing else follows it there
    assert trie.state(ids("Row dow dow")) == -1
    assert trie.state(ids("Row the Boat of the Reel")) >= 0  # a word may still come back later in a title


def test_the_order_has_no_dead_ends_within_the_title_length():
    trie = TitleTrie((), TOKENS, ROADS, order=1)
    assert allowed(trie, "", left=8) == {"T"}  # "The Kesh": 8 characters; nothing else fits
    assert allowed(trie, "", left=7) == {"END"}  # no title fits: no title
    assert allowed(trie, "The ", left=4) == {"K", "M", "H"}  # "The Reel Billy," no longer fits
    assert allowed(trie, "The Road to ", left=11) == {"R"}  # "Lisdoonvarna" is 12
    assert allowed(trie, "The Reel", left=7) == {SPACE} and allowed(trie, "The Reel", left=6) == set()
    titles = ["The Kesh", "The Kesh Jig", "Jig of the Kesh", "Kesh of the Moor", "The Moor", "Moor Jig",
              "O'Neill's Jig", "The Man of Aran", "Man of the Moor", "A Fair", "The Fair Maid", "Maid of Aran",
              "Billy, the Kid", "The Kid", "X", "Reel"]
    rng = random.Random(0)
    for novel in (False, True):
        trie = TitleTrie((), TOKENS, titles, novel=novel, order=1)
        for _ in range(400):
            limit = rng.randrange(0, 40)
            title = walk(trie, rng, limit)
            assert len(title) <= limit and in_order(title, titles), (title, limit)
            assert not novel or not copies(title, titles), (title, limit)


def test_novel_titles_are_no_whole_corpus_title():
    titles = ["The Kesh", "Kesh of the Moor", "The Moor"]
    free, novel = TitleTrie((), TOKENS, titles, order=1), TitleTrie((), TOKENS, titles, novel=True, order=1)
    assert allowed(free, "The Kesh") == {SPACE, "END"} and allowed(novel, "The Kesh") == {SPACE}
    assert allowed(novel, "The Kesh of the Moor") == {"END"}  # past the corpus titles: its own
    assert allowed(free, "The ") == {"K", "M"} and allowed(novel, "The ") == {"K"}  # "The Moor" ends nowhere else
    assert allowed(novel, "Kesh of the ") == {"K"} and novel.state(ids("Kesh of the M")) == -1
    assert allowed(novel, "Kesh of the Kesh") == {SPACE, "END"}
    # where every title beginning "The" is a corpus title, "T" is never allowed; the count knows the
    # shortest title left ("Jigs of the Kesh Jig": 20 characters)
    titles = ["The Kesh", "The Kesh Jig", "Jigs of the Kesh"]
    free, novel = TitleTrie((), TOKENS, titles, order=1), TitleTrie((), TOKENS, titles, novel=True, order=1)
    assert allowed(free, "", left=8) == {"T"} and allowed(free, "", left=7) == {"END"}
    assert allowed(novel, "") == {"J"} and novel.state(ids("T")) == -1
    assert allowed(novel, "Jigs of the Kesh") == {SPACE} and allowed(novel, "Jigs of the Kesh Jig") == {"END"}
    assert allowed(novel, "", left=19) == {"END"} and allowed(novel, "", left=20) == {"J"}


def test_an_order_2_title_follows_the_two_words_before_it():
    """Without joins, the words that may come next are those that follow the last two in some title,
    so that a title joins corpus titles where they share two words ("The Road to" ...), not one
    ("... Reel" + "Reel of ...")."""
    trie = TitleTrie((), TOKENS, ROADS, joins=0)
    assert allowed(trie, "") == {"T", "O", "R", "U"}  # first words as before
    assert allowed(trie, "The ") == {"K", "R"}  # after "The" at a title's start: "Kesh", "Road", "Reel"
    assert allowed(trie, "Over the ") == {"M"} and allowed(trie, "Up the ") == {"H"}  # not every "the"'s
    assert allowed(trie, "The Road to ") == allowed(trie, "Road to ") == {"L", "R"}  # "road to" shared
    assert allowed(trie, "The Reel ") == {"B"}  # the dash skipped; not "of": that is "Reel of Tulloch"'s
    assert allowed(trie, "The Kesh") == {"END"} and allowed(trie, "Road to Lisdoonvarna") == {"END"}
    for off in ("The Reel of", "Up the Moor", "Over the Hill", "The Moor"):
        assert trie.state(ids(off)) == -1, off
    assert TitleTrie((), TOKENS, ROADS, order=1).state(ids("Up the Moor")) >= 0  # order 1 joins at "the"
    with pytest.raises(ValueError):
        TitleTrie((), TOKENS, ROADS, order=3)
    trie = TitleTrie((), TOKENS, ["Row dow dow", "Row the Boat", "Boat of the Reel", "Reel"], joins=0)
    assert trie.state(ids("Row dow")) == -1  # "dow" may not follow itself, and "Row dow" ends no title
    assert allowed(trie, "Row ") == {"t"}
    assert allowed(trie, "") == {"R", "B"} and allowed(trie, "Reel") == {"END"}  # a title of one word
    assert trie.state(ids("Boat of the Reel")) >= 0


def test_a_title_may_join_two_corpus_titles_at_one_word_once():
    """The default: one step of order 1 in a title ("Up the" + "the Moor"), after which the order is 2
    again: "The Reel of Tulloch" (a join at "Reel"), but not "Over the Reel of Tulloch" (two)."""
    trie = TitleTrie((), TOKENS, ROADS)
    assert allowed(trie, "The Reel ") == {"B", "o"}
    assert allowed(trie, "The Reel of ") == {"T"} and allowed(trie, "The Reel of Tulloch") == {"END"}
    assert allowed(trie, "Up the ") == {"H", "K", "R", "M"}  # "Hill" as written; the others joined
    assert allowed(trie, "Up the Road to ") == {"L", "R"}  # one join, then order 2
    assert trie.state(ids("Over the Reel")) >= 0 and trie.state(ids("Over the Reel of")) == -1
    assert TitleTrie((), TOKENS, ROADS, joins=2).state(ids("Over the Reel of Tulloch")) >= 0


def test_order_2_titles_have_no_dead_ends_and_keep_their_order():
    titles = ["The Kesh", "The Kesh Jig", "Jig of the Kesh", "Kesh of the Moor", "The Moor", "Moor Jig",
              "O'Neill's Jig", "The Man of Aran", "Man of the Moor", "A Fair", "The Fair Maid", "Maid of Aran",
              "Billy, the Kid", "The Kid", "X", "Reel", "The Man of the Moor Jig", "Jig of the Moor"]
    rng = random.Random(1)
    for joins in (0, 1):
        made = set()
        for novel in (False, True):
            trie = TitleTrie((), TOKENS, titles, novel=novel, joins=joins)
            for _ in range(400):
                limit = rng.randrange(0, 40)
                title = walk(trie, rng, limit)
                assert len(title) <= limit and in_order(title, titles, order=2, joins=joins), (title, limit, joins)
                assert not novel or not copies(title, titles), (title, limit)
                made.add(title)
        assert {"Man of the Kesh", "Jig of the Moor Jig"} & made  # joined where two words are shared
        assert joins or not any(title.startswith("The Kesh of") for title in made)  # "Kesh of" begins one only
        assert not joins or any(not in_order(title, titles, order=2) for title in made)  # a join taken
        # the chain of half the titles, never writing any of them whole
        trie = TitleTrie((), TOKENS, titles[::2], novel=True, joins=joins, forbidden=titles[1::2])
        for _ in range(400):
            limit = rng.randrange(0, 40)
            title = walk(trie, rng, limit)
            assert len(title) <= limit and not copies(title, titles), (title, limit, joins)


def test_the_trie_has_one_mask_a_state_and_is_made_once():
    trie = trie_for(("The", "Reel"), TOKENS)
    assert trie_for(("The", "Reel"), TOKENS) is trie
    state = trie.state(ids("The"))
    assert trie.mask(state, 60) is trie.mask(state, 50)  # the precomputed row
    assert trie.mask(state, 2) is trie.mask(state, 2)  # near the limit: worked out once
    chain = trie_for((), TOKENS, ("The Reel", "The Kesh"))
    assert chain is trie_for((), TOKENS, ("The Reel", "The Kesh")) and chain is not trie
    assert trie_for((), TOKENS, ("The Reel", "The Kesh"), novel=True) is not chain
    state = chain.state(ids("The K"))
    assert chain.mask(state, 60) is chain.mask(state, 40)


def test_the_title_and_word_files(tmp_path):
    assert read_titles(tmp_path) is None and read_words(tmp_path) is None
    write_titles(tmp_path, ["O'Neill's Reel", "The Kesh"])
    assert (tmp_path / TITLES_FILE).read_text() == "O'Neill's Reel\nThe Kesh\n"
    (tmp_path / TITLES_FILE).write_text("O'Neill's  Reel \n\nThe Kesh\n")
    assert read_titles(tmp_path) == ("O'Neill's Reel", "The Kesh")
    (tmp_path / TITLES_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(ModelError, match="UTF-8"):
        read_titles(tmp_path)
    # the older word file: one word a line
    write_words(tmp_path, ["O'Neill's", "Reel", "the"])
    assert (tmp_path / WORDS_FILE).read_text() == "O'Neill's\nReel\nthe\n"
    assert read_words(tmp_path) == ("O'Neill's", "Reel", "the")
    (tmp_path / WORDS_FILE).write_text("The Reel\n")
    with pytest.raises(ModelError, match="space"):
        read_words(tmp_path)
    (tmp_path / WORDS_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(ModelError, match="UTF-8"):
        read_words(tmp_path)


def test_the_title_file_keeps_the_rhythms_of_each_titles_tunes(tmp_path):
    tunes = [["<s>", *"The", SPACE, *"Kesh", "R:jig", "M:6/8"], ["<s>", *"The", SPACE, *"Kesh", "R:reel"],
             ["<s>", *"Over", SPACE, *"the", SPACE, *"Moor", "M:4/4"], ["<s>", "R:reel"]]
    assert corpus_title_rhythms(tunes) == {"Over the Moor": ("other",), "The Kesh": ("jig", "reel")}
    write_titles(tmp_path, corpus_title_rhythms(tunes))
    assert (tmp_path / TITLES_FILE).read_text() == "Over the Moor\tother\nThe Kesh\tjig,reel\n"
    assert read_titles(tmp_path) == ("Over the Moor", "The Kesh")
    assert read_title_file(tmp_path)[1] == {"Over the Moor": ("other",), "The Kesh": ("jig", "reel")}
    (tmp_path / TITLES_FILE).write_text("Over  the Moor\t other \nThe Kesh\nThe Kesh\tjig\n\treel\n \tjig\n")
    assert read_titles(tmp_path) == ("Over the Moor", "The Kesh")  # once each; a line of no title is none
    assert read_title_file(tmp_path)[1] == {"Over the Moor": ("other",), "The Kesh": ("jig",)}
    write_titles(tmp_path, ["The Kesh"])  # a folder written before the rhythms were kept
    assert read_titles(tmp_path) == ("The Kesh",) and read_title_file(tmp_path)[1] is None


def test_a_forbidden_title_is_not_written_whole():
    """The chain of some titles (one rhythm's) may still not write another corpus title whole."""
    trie = TitleTrie((), TOKENS, ["The Kesh", "Kesh of the Moor", "The Moor"], novel=True, forbidden=["The Kesh Moor"])
    assert allowed(trie, "The Kesh") == {SPACE}  # a chain title
    plain = TitleTrie((), TOKENS, ["The Kesh", "Kesh of the Moor", "The Moor", "Kesh Moor"], novel=True)
    guarded = TitleTrie((), TOKENS, ["The Kesh", "Kesh of the Moor", "The Moor", "Kesh Moor"], novel=True,
                        forbidden=["The Kesh Moor", "A Title of Words It Lacks"])
    assert "END" in allowed(plain, "The Kesh Moor")  # "The Kesh" + "Kesh Moor": a join
    state = guarded.state(ids("The Kesh Moor"))
    assert state == -1 or "END" not in allowed(guarded, "The Kesh Moor")
    assert "END" in allowed(guarded, "The Kesh of the Moor")  # past a title: its own


# --- the titles a model writes ---------------------------------------------------------------------


def test_train_writes_the_titles_of_its_corpus(tiny_model_dir, tiny_corpus, tiny):
    titles = corpus_titles(tiny_corpus.train)
    assert len(titles) > 50
    assert read_titles(tiny_model_dir) == tuple(titles) and not (tiny_model_dir / WORDS_FILE).exists()
    assert read_title_file(tiny_model_dir)[1] == corpus_title_rhythms(tiny_corpus.train)
    assert tiny.engine.titles == tuple(titles)  # the engine carries them to the sampler, with their words
    assert tiny.engine.title_words == tuple(corpus_title_words(tiny_corpus.train))


def test_untitled_tunes_write_titles_in_corpus_order(tiny):
    titles, words = tiny.engine.titles, set(tiny.engine.title_words)
    tunes = sample_tunes(tiny.engine, tiny.vocabulary, list(range(24)))
    made = [title_text(tune.tokens) for tune in tunes]
    assert all(tune.ok for tune in tunes)
    assert all(title and words_of(title, words) and in_order(title, titles) for title in made), made
    assert not any(copies(title, titles) for title in made), made  # never a whole corpus title
    # copies allowed: the order still kept
    copied = sample_tunes(tiny.engine, tiny.vocabulary, list(range(24)), config=SampleConfig(title_copies=True))
    assert all(in_order(title_text(tune.tokens), titles) for tune in copied)
    # without the words, the same model spells freely
    free = sample_tunes(tiny.engine, tiny.vocabulary, list(range(24)), config=SampleConfig(title_words=False))
    assert not all(words_of(title_text(tune.tokens), words) for tune in free)
    # beam search keeps to the order too
    beam = sample_one(tiny.engine, tiny.vocabulary, 0, config=SampleConfig(strategy="beam", beam_width=2))
    assert in_order(title_text(beam.tokens), titles) and not copies(title_text(beam.tokens), titles)


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


def test_a_model_with_the_older_word_file_keeps_to_the_words(tiny_model_dir, tiny, tmp_path):
    from folkrnn.checkpoint import load_model

    old = tmp_path / "old"
    shutil.copytree(tiny_model_dir, old)
    (old / TITLES_FILE).unlink()
    write_words(old, tiny.engine.title_words)
    model = load_model(old)
    assert model.titles is None and model.title_words == tiny.engine.title_words
    seeds = list(range(16))
    made = sample_tunes(model.engine(), model.vocabulary, seeds)
    words = set(model.title_words)
    assert all(tune.ok and words_of(title_text(tune.tokens), words) for tune in made)
    assert not all(in_order(title_text(tune.tokens), tiny.engine.titles) for tune in made)  # any order
    engine = load_model(tiny_model_dir).engine()
    engine.titles = None  # the words alone: the same tunes
    assert [t.tokens for t in made] == [t.tokens for t in sample_tunes(engine, model.vocabulary, seeds)]


def test_a_model_without_the_titles_is_as_before(tiny_model_dir, tiny, tmp_path):
    from folkrnn.checkpoint import load_model

    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    (bare / TITLES_FILE).unlink()
    model = load_model(bare)
    assert model.title_words is None and model.titles is None and model.engine().titles is None
    seeds = list(range(8))
    before = sample_tunes(model.engine(), model.vocabulary, seeds)
    assert [t.tokens for t in before] == [t.tokens for t in sample_tunes(
        tiny.engine, tiny.vocabulary, seeds, config=SampleConfig(title_words=False))]


def test_requests_with_and_without_words_are_not_of_one_kin(tiny):
    """A loop shared by requests (folkrnn.decode.shared) calls one constraint for all rows of one kin."""
    config = SampleConfig()
    engine = tiny.engine

    def kin(conditions=None, titles=engine.titles, **options):
        plan = _plan(tiny.vocabulary, conditions or Conditions(), dataclasses.replace(config, **options),
                     title_words=engine.title_words, titles=titles)
        return plan, AbcConstraint(plan, config, tiny.vocabulary).kin()

    (words, novel), (plain, free) = kin(), kin(title_words=False)
    (_, copied), (_, alone) = kin(title_copies=True), kin(titles=None)
    assert words.titles is not None and plain.titles is None
    assert len({novel, free, copied, alone}) == 4  # no constraint, the words alone, in order, never a copy
    assert kin()[1] == novel
    assert kin(Conditions(title="The Kesh"))[0].titles is None


def test_a_trie_made_again_finds_its_grammar_again(tiny):
    # a server holds R: to one dance or another, a trie each, more than the few kept: a trie made again
    # after it was pushed out names the same words, so the grammar (and the states it learnt) is found
    from folkrnn.abc import titles as titles_module

    engine = tiny.engine

    def plan(rhythm=None):
        return _plan(tiny.vocabulary, Conditions(rhythm=rhythm), SampleConfig(), title_words=engine.title_words,
                     titles=engine.titles)

    first = plan()
    made = first.titles.trie  # (made when a title first needs it)
    titles_module._TRIES.clear()
    again = plan()
    assert again.titles.trie is not made and again.grammar is first.grammar
    assert again.titles.ident == first.titles.ident == made.ident


def test_the_shipped_model_writes_titles_in_its_corpus_order():
    from folkrnn.checkpoint import SHIPPED, load_model

    if not (SHIPPED / "abc" / TITLES_FILE).is_file():
        pytest.skip("the shipped ABC model has no titles")
    model = load_model(SHIPPED / "abc")
    titles, words = model.titles, set(model.title_words)
    assert 1000 < len(titles) < 20000 and 1000 < len(words) < 20000
    tunes = sample_tunes(model.engine(), model.vocabulary, list(range(1, 13)))
    made = [title_text(tune.tokens) for tune in tunes]
    assert all(tune.ok for tune in tunes)
    assert all(words_of(title, words) and in_order(title, titles, order=2, joins=1)
               and not copies(title, titles) for title in made)
