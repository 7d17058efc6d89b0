"""The form, valid by construction: the grammar's parts, repeats and endings, checked by the form
scanner (folkrnn.form), the validator and abc2midi -c."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from conftest import VOCABULARY, RandomEngine, abc2midi_messages, abc2midi_problems
from folkrnn.abc.grammar import Form, parse_form
from folkrnn.abc.tokens import detokenize, named_dance
from folkrnn.errors import OptionError
from folkrnn.form import form_of
from folkrnn.sample import Conditions, sample_tunes
from folkrnn.tables import DANCES
from folkrnn.validate import validate_tune


@pytest.fixture(scope="module")
def shipped():
    from folkrnn.checkpoint import load_model, shipped_model

    model = load_model(shipped_model("abc"))
    return model.engine(), model.vocabulary


@pytest.mark.parametrize("text, parts, bars", [
    ("AABB", (True, True), 8), ("AABBCC", (True, True, True), 8), ("AB", (False, False), 16),
    ("ABC", (False, False, False), 16), ("AAB", (True, False), 16), ("free", None, None),
])
def test_parse_form(text, parts, bars):
    form = parse_form(text)
    if parts is None:
        assert form is None
    else:
        assert form == Form(parts, bars) and form.label == text


@pytest.mark.parametrize("text", ["BA", "AAAB", "ABD", "", "x"])
def test_a_form_out_of_order_is_an_option_error(text):
    with pytest.raises(OptionError):
        parse_form(text)


def test_part_bars_out_of_range_is_an_option_error():
    with pytest.raises(OptionError):
        parse_form("AABB", 0)


@pytest.mark.slow
@pytest.mark.parametrize("form, rhythm, part_bars", [
    ("AABB", "reel", 8), ("AABB", "jig", 8), ("AB", "reel", 8), ("ABC", "hornpipe", 8),
    ("AABBCC", "jig", 8), ("AABB", "reel", 16),
])
def test_every_tune_has_the_form_asked_for(shipped, tmp_path, form, rhythm, part_bars):
    engine, vocabulary = shipped
    results = sample_tunes(engine, vocabulary, list(range(12)),
                           conditions=Conditions(rhythm=rhythm, form=form, part_bars=part_bars))
    texts = []
    for result in results:
        assert result.ok, result.failures
        text = detokenize(result.tokens)
        texts.append(text)
        measured = form_of(text)
        assert len(measured.parts) == len(parse_form(form).parts), text
        assert [part.bars for part in measured.parts] == [part_bars] * len(measured.parts), text
        assert [part.repeated for part in measured.parts] == list(parse_form(form, part_bars).parts), text
        assert validate_tune(text).valid, text
    assert abc2midi_problems(texts, tmp_path) == []


@pytest.mark.slow
def test_untitled_tunes_are_dances_in_their_meter_and_form(shipped, tmp_path):
    engine, vocabulary = shipped
    results = sample_tunes(engine, vocabulary, list(range(40, 64)))
    texts, others = [], 0
    for result in results:
        assert result.ok
        tokens = result.tokens
        rhythm = next(t for t in tokens if t.startswith("R:"))[2:]
        meter = next(t for t in tokens if t.startswith("M:"))[2:]
        dance = DANCES[rhythm]
        text = detokenize(tokens)
        texts.append(text)
        measured = form_of(text)
        if not dance.meters:  # the share that is not a dance (DANCE_SHARE): in parts of whole phrases,
            # with a title that names no dance
            others += 1
            assert rhythm in ("other", "air") and all(part.bars % 4 == 0 for part in measured.parts), text
            title = next(line[2:] for line in text.splitlines() if line.startswith("T:"))
            assert named_dance(title) in ("other", "air"), text
            continue
        assert meter in dance.meters
        if dance.form != "free":
            assert [part.bars for part in measured.parts] == [dance.part_bars] * len(parse_form(dance.form).parts)
        assert measured.ends_on_tonic, text
    assert 0 < others < 8  # seeds 40-63 draw 3 tunes of no dance
    assert abc2midi_problems(texts, tmp_path) == []


@pytest.mark.slow
def test_rhythm_any_lets_the_model_choose_any_rhythm(shipped):
    engine, vocabulary = shipped
    results = sample_tunes(engine, vocabulary, list(range(30)), conditions=Conditions(rhythm="any", form="free"))
    assert all(result.ok for result in results)


@pytest.mark.slow
def test_free_form_keeps_the_models_own_bars(shipped):
    """--form free: no form is imposed (the grammar of bars and repeats alone)."""
    engine, vocabulary = shipped
    free = sample_tunes(engine, vocabulary, [5, 6], conditions=Conditions(rhythm="reel", form="free"))
    again = sample_tunes(engine, vocabulary, [5, 6], conditions=Conditions(rhythm="reel", form="free"))
    assert [r.tokens for r in free] == [r.tokens for r in again]


def test_a_free_part_closes_from_its_16th_bar(shipped):
    # past the 16 bars the position features count, the model lost its place: with --form free, 1 tune
    # in 12 had a part of more than 24 bars (one of 139). A free part's 16th bar line closes the part
    # where the grammar allows it, and a part no bar line could close steers the tune to its end
    engine, vocabulary = shipped
    results = sample_tunes(engine, vocabulary, list(range(2024, 2084)), conditions=Conditions(form="free"))
    assert all(r.ok for r in results)
    forms = [form_of(detokenize(r.tokens)) for r in results]
    longest = [max(part.bars for part in form.parts) for form in forms]
    assert max(longest) <= 17  # the bar the end takes, where a tie or a pickup's repeat kept | the only way on
    assert sum(bars > 16 for bars in longest) <= 3
    assert len({form.label for form in forms}) > 3  # the form is still the model's own


@pytest.mark.parametrize("strategy", ["sample", "beam"])
def test_a_prime_may_run_a_free_part_past_16_bars(shipped, strategy):
    # the prime is the musician's: its plain bar lines are never refused, and the 16-bar close waits
    # until it is written (then the tune, its part past 16 bars, is asked to end)
    from folkrnn.sample import SampleConfig

    engine, vocabulary = shipped
    prime = tuple("A B c d e f g a |".split() * 17)
    result = sample_tunes(engine, vocabulary, [0], config=SampleConfig(strategy=strategy, attempts=1),
                          conditions=Conditions(form="free", rhythm="reel", meter="4/4", prime=prime))[0]
    assert result.ok, result.failures
    assert [token for token in result.tokens if token != "</s>"][-1] in ("||", ":|", "|")
    assert max(part.bars for part in form_of(detokenize(result.tokens)).parts) <= 19


@pytest.mark.slow
def test_the_compass_keeps_every_tune_within_it(shipped):
    from folkrnn.form import range_semitones
    from folkrnn.sample import SampleConfig

    engine, vocabulary = shipped
    seeds, conditions = list(range(100, 130)), Conditions(form="free", rhythm="any")
    wide = sample_tunes(engine, vocabulary, seeds, config=SampleConfig(compass=0), conditions=conditions)
    held = sample_tunes(engine, vocabulary, seeds, config=SampleConfig(compass=12), conditions=conditions)
    assert all(r.ok for r in held) and max(range_semitones(detokenize(r.tokens)) for r in held) <= 12
    assert max(range_semitones(detokenize(r.tokens)) for r in wide) > 12  # the model alone goes wider


@pytest.mark.slow
def test_the_lookback_bonus_brings_bars_back(shipped):
    from folkrnn.form import form_of
    from folkrnn.sample import SampleConfig

    engine, vocabulary = shipped
    seeds = list(range(200, 230))

    def share(bonus):
        results = sample_tunes(engine, vocabulary, seeds, config=SampleConfig(lookback=bonus),
                               conditions=Conditions(rhythm="reel"))
        forms = [form_of(detokenize(r.tokens)) for r in results]
        return sum(f.repeated_bars for f in forms) / sum(f.bars for f in forms)

    none, some = share(0.0), share(4.0)
    assert some > none + 0.1


def test_the_lookback_bonus_favours_music_never_structure(shipped):
    # a bar line (or an ending, or the end) offered two bars or a part ago gets no bonus: favouring the
    # plain bar line two bars before a part's last bar kept --form free parts from ending
    import numpy as np

    from folkrnn.sample import _lookback, copyable

    engine, vocabulary = shipped
    table = copyable(vocabulary.tokens)
    note, bar, ending, rest = (vocabulary.id(t) for t in ("c", "|", "[1", "z"))

    class Offering:  # a row in a part's 3rd bar whose tracker offers these tokens (1 + id) two bars
        # and a part ago
        tracker = SimpleNamespace(offer4=0)

        def __init__(self, back2, backpart):
            self.feature = (0, 3, 1, 0, 1 + back2, 1 + backpart, 0)

    rows = [Offering(bar, note), Offering(ending, rest), Offering(note, note)]
    logits = np.zeros((3, len(vocabulary)), np.float32)
    favoured = _lookback(logits, rows, 1.5, table)
    assert logits.max() == 0  # a new array
    assert favoured[0, note] == 1.5 and favoured[0, bar] == 0
    assert favoured[1, rest] == 1.5 and favoured[1, ending] == 0
    assert favoured[2, note] == 1.5 and np.count_nonzero(favoured[2]) == 1  # once, when both offer it
    assert not table[0] and table[1 + note] and not table[1 + vocabulary.eos_id]


def test_the_lookback_bonus_offers_by_a_bars_place_in_its_phrase(shipped):
    # two bars back in the 3rd bar of a stretch of 8 (a part's bars 1-8, 9-16), the bar a phrase (four
    # bars) ago in its 5th to 8th, the part before in every bar; in a stretch's last two bars the part
    # before's bar alone, at twice the bonus (a later part closes as the one before it did), and the
    # bar a phrase ago only where there is no part before (a first part); past a part's 16th bar (the
    # bar feature's 17) nothing
    from folkrnn.sample import _lookback, copyable

    engine, vocabulary = shipped
    table = copyable(vocabulary.tokens)
    c, d, e = vocabulary.id("c"), vocabulary.id("d"), vocabulary.id("e")

    class Offering:  # a row in bar ``bar`` (the feature: 1 + full bars so far) offering c two bars
        # back, d a part back (none in a first part) and e a phrase back
        def __init__(self, bar, later):
            self.feature = (0, bar, 2 if later else 1, 0, 1 + c, 1 + d if later else 0, 0)
            self.tracker = SimpleNamespace(offer4=1 + e)

    bars = list(range(1, 18))
    for later in (True, False):
        favoured = _lookback(np.zeros((len(bars), len(vocabulary)), np.float32),
                             [Offering(b, later) for b in bars], 2.0, table)

        def at(token, gain, favoured=favoured):
            return {b for b, value in zip(bars, favoured[:, token].tolist()) if value == gain}

        assert at(c, 2.0) == {3, 11}
        if later:
            assert at(e, 2.0) == {5, 6, 13, 14}
            assert at(d, 2.0) == set(range(1, 17)) - {7, 8, 15, 16} and at(d, 4.0) == {7, 8, 15, 16}
            assert set(np.unique(favoured)) == {0.0, 2.0, 4.0}
        else:
            assert at(e, 2.0) == {5, 6, 7, 8, 13, 14, 15, 16}
            assert not favoured[:, d].any()
            assert set(np.unique(favoured)) == {0.0, 2.0}


def test_the_lookback_bonus_stops_copying_a_bar_written_four_times(shipped):
    # what a bar the tune has written _WORN (4) times offers, a phrase or two bars back, gets no bonus:
    # the bonus had written one bar eight times over as a jig's A part. A bar written three times
    # still offers, and so does another bar a phrase back, though it begins as the worn one does
    from folkrnn.abc.features import Positions
    from folkrnn.sample import _WORN, _BarCounts, _lookback, copyable

    engine, vocabulary = shipped
    table = copyable(vocabulary.tokens)
    ids = vocabulary.id
    lines = frozenset(ids(token) for token in ("|", ":|", "|:", "||", "[1", "[2"))
    assert _WORN == 4
    loop = ["d", "B", "B", "d", "B", "G", "|"]
    other = ["d", "c", "B", "A", "G", "F", "|"] + ["d", "G", "A", "B", "2", "c", "|"]

    class Writing:  # a tune followed token by token, as the sampler follows it
        def __init__(self, body):
            self.tracker, self.bars = Positions(vocabulary.tokens), _BarCounts()
            self.ids = [vocabulary.bos_id] + [ids(t) for t in ["R:jig", "M:6/8", "K:Cmaj"] + body]
            for token in self.ids:
                self.feature = self.tracker.push(token)
                self.bars.follow(self.tracker, lines)

    part = loop * 3 + loop[:-1] + ["||"]  # an A part of the loop, written four times
    rows = [Writing(loop + other[:7] + loop * 2 + ["d"]),  # bar 5: the phrase ago, written 3 times
            Writing(loop * 4 + ["d"]), Writing(loop * 5 + ["d"]),  # bars 5 and 6: written 4 and 5 times
            Writing(loop + other[:7] + loop * 3 + ["d"]),  # bar 6: the phrase ago is dcB AGF
            Writing(part + loop + other[7:] + ["d"])]  # B part, bar 3: two back is the loop again
    assert [row.bars.counts[tuple(ids(t) for t in loop[:-1])] for row in rows] == [3, 4, 5, 4, 5]
    assert [row.bars.any_worn for row in rows] == [False, True, True, True, True]
    assert [row.feature[1] for row in rows] == [5, 5, 6, 6, 3]  # the bar feature: 1 + full bars so far
    favoured = _lookback(np.zeros((len(rows), len(vocabulary)), np.float32), rows, 2.0, table)
    assert favoured[[0, 1, 2, 4], ids("B")].tolist() == [2.0, 0.0, 0.0, 0.0]  # dBB dBG
    assert favoured[3, ids("c")] == 2.0  # a phrase ago: dcB AGF, written once
    assert np.count_nonzero(favoured[4]) == 0
    clone = rows[1].bars.clone()
    clone.counts.clear()
    assert rows[1].bars.counts
    # a B part's 7th bar, where the A part's 7th bar (which alone would be offered there) is the worn
    # loop: the bar a phrase ago (the B part's 3rd, which begins with e) still offers
    fresh = [list(bar) + ["|"] for bar in ("cBAGFE", "edcBAG", "fedcBA", "gfedcB", "agfedc", "BAGFED")]
    a_part = loop + fresh[0] + loop + loop + fresh[1] + fresh[2] + loop + fresh[3][:-1] + ["||"]
    b_part = fresh[4] + fresh[5] + fresh[1] + fresh[2] + fresh[3] + fresh[0]
    row = Writing(a_part + b_part)
    assert row.feature[1] == 7 and row.feature[5] == 1 + ids("d") and row.tracker.offer4 == 1 + ids("e")
    favoured = _lookback(np.zeros((1, len(vocabulary)), np.float32), [row], 2.0, table)
    assert favoured[0, ids("e")] == 2.0 and favoured[0, ids("d")] == 0.0


@pytest.mark.parametrize("pickup", [True, False])
def test_asked_to_end_inside_a_first_ending_the_bar_closes_with_a_repeat(pickup):
    # the length guard's request to end forbids a plain bar line inside ending 1, so the bar must be
    # one :| may close: the bar completing the pickup when the repeat began with it, else a full bar
    # (a free tune of 940 tokens, seed 26, filled the bar and met a dead end)
    from folkrnn.abc.grammar import AbcGrammar

    tokens = ["<s>", "</s>", "R:reel", "M:4/4", "L:1/8", "K:Cmaj", "C", "2", "4", "8", "|", ":|", "|:", "[1", "[2"]
    grammar = AbcGrammar(tokens)
    sid = grammar.start
    body = (["C", "4", "|"] if pickup else ["|:"]) + ["C", "8", "|"] * 2 + ["[1"]
    for token in ["R:reel", "M:4/4", "L:1/8", "K:Cmaj"] + body:
        sid = grammar.next(sid, tokens.index(token))
        assert sid >= 0, token
    note = grammar.next(grammar.closing(sid), tokens.index("C"))
    if pickup:
        assert grammar.next(note, tokens.index("8")) == -1  # a full bar: neither | nor :| could close it
    closes = "4" if pickup else "8"
    after = grammar.next(note, tokens.index(closes))
    assert [tokens[i] for i in np.flatnonzero(grammar.mask(after))] == [":|"]
    if pickup:  # asked too late, past the pickup's complement, nothing could follow: the request
        # waits (closing gives the state back), and a plain bar line takes the tune to the next bar
        late = grammar.next(grammar.next(sid, tokens.index("C")), tokens.index("8"))
        assert late >= 0 and grammar.closing(late) == late
        assert grammar.mask(late)[tokens.index("|")]


def test_endings_begin_only_at_the_bar_before_a_parts_last():
    from folkrnn.abc.grammar import AbcGrammar

    tokens = ["<s>", "</s>", "R:reel", "M:4/4", "L:1/8", "K:Cmaj", "C", "2", "8", "|", ":|", "|:", "[1", "[2", "||"]
    grammar = AbcGrammar(tokens, form=Form((True, True), 8))
    sid = grammar.start
    places = []
    for token in ["R:reel", "M:4/4", "L:1/8", "K:Cmaj"] + ["C", "8", "|"] * 7:
        sid = grammar.next(sid, tokens.index(token))
        assert sid >= 0, token
        places.append(grammar.before_last_bar(sid))
    assert places[-1] and not any(places[:-1])  # after the 7th bar line of the 8-bar part, and only there
    assert grammar.mask(sid)[tokens.index("[1")]
    assert not grammar.before_last_bar(grammar.next(sid, tokens.index("[1")))


def test_a_key_changes_at_a_bar_line_never_after_a_note():
    """Every key change of the default corpus (43) comes at a bar line. After a note, a key change
    changes the key in the middle of a bar, and in a tune's last bar the key of its last note or of
    nothing: the shipped model wrote ``c2B d2[K:G] |:``, ``f2f ag[K:C] :|`` and ``e4[K:Gm]g2 :|``,
    44 of 2,000 default tunes changing key (3 with this rule), against 36 of the 3,913 training
    tunes. Nor before the first note, where the header's K: has just set the key. At the start of
    a bar it may come, with a form or without one."""
    from folkrnn.abc.grammar import AbcGrammar

    tokens = ["<s>", "</s>", "R:reel", "M:4/4", "L:1/8", "K:Cmaj", "C", "4", "8", "|", ":|", "|:", "||",
              "[K:Gmaj]"]
    key = tokens.index("[K:Gmaj]")
    for form in (Form((False, False), 8), None):
        grammar = AbcGrammar(tokens, form=form)

        def walk(sid, seq, grammar=grammar):
            for token in seq:
                sid = grammar.next(sid, tokens.index(token))
                assert sid >= 0, token
            return sid

        header = walk(grammar.start, ["R:reel", "M:4/4", "L:1/8", "K:Cmaj"])
        assert not grammar.mask(header)[key]  # before the first note: the header's K: sets the key
        first = walk(header, ["C", "4"])
        assert not grammar.mask(first)[key]  # after a note of the first bar
        assert grammar.mask(walk(first, ["C"]))[tokens.index("4")]  # the bar goes on
        full = walk(first, ["C", "4"])
        assert not grammar.mask(full)[key]  # a full bar, before its bar line
        assert grammar.mask(walk(full, ["|"]))[key]  # after the bar line
        sid = walk(header, ["C", "8", "|"] * 7 + ["C", "8", "||"] + ["C", "8", "|"] * 7)
        assert grammar.mask(sid)[key]  # at the start of the last bar (of the form's, if any)
        in_last = walk(sid, ["C"])
        assert not grammar.mask(in_last)[key]
        assert not grammar.mask(walk(in_last, ["8"]))[key]


def _first_parts_with_endings(results) -> tuple[int, int]:
    forms = [form_of(detokenize(result.tokens)) for result in results if result.ok]
    firsts = [next(part for part in form.parts if part.repeated) for form in forms]
    return sum(part.has_endings for part in firsts), len(firsts)


@pytest.mark.slow
def test_a_form_closes_parts_with_endings_as_often_as_the_dance_does(tmp_path):
    """The model alone all but never writes first and second endings (random logits: rarely); held to
    a form, a reel's first part takes them as often as the corpus's reels (Dance.endings, 11%), the
    draw made from the tune's seed (the same tunes again), and the tunes stay whole for abc2midi."""
    from folkrnn.sample import SampleConfig

    engine, seeds = RandomEngine(len(VOCABULARY), 3.0, 7), list(range(300))
    conditions = Conditions(rhythm="reel", form="AABB")
    held = sample_tunes(engine, VOCABULARY, seeds, conditions=conditions)
    alone = sample_tunes(engine, VOCABULARY, seeds, conditions=conditions, config=SampleConfig(endings=False))
    taken, count = _first_parts_with_endings(held)
    share = DANCES["reel"].endings
    assert count >= 250
    assert abs(taken / count - share) < 4 * (share * (1 - share) / count) ** 0.5, (taken, count)
    assert _first_parts_with_endings(alone)[0] < taken
    assert [r.tokens for r in sample_tunes(engine, VOCABULARY, seeds[:20], conditions=conditions)] == \
        [r.tokens for r in held[:20]]
    texts = [detokenize(r.tokens) for r in held if r.ok and "[1" in r.tokens][:30]
    assert texts and all(validate_tune(text).valid for text in texts)
    assert abc2midi_problems(texts, tmp_path) == []


def _part_closes(tokens):
    """The last note token of each part of a tune held to a form (a first ending's close left out)."""
    from folkrnn.abc.grammar import TokenClass, classify

    closes, last, in_first, bars = [], None, False, 0
    body = next(i for i, token in enumerate(tokens) if token.startswith("K:")) + 1  # the title's letters left out
    for token in tokens[body:]:
        kind = classify(token)[0]
        if kind in (TokenClass.NOTE, TokenClass.REST):
            last = token
        elif token == "[1":
            in_first = True
        elif token == "|":
            bars += 1
        elif token == ":|" and in_first:  # a first ending's close: ending 2 goes on with the part
            in_first, last = False, None
        elif token in (":|", "||", "|:") and last is not None and (bars or token != "|:"):  # not a pickup's |:
            closes.append(last)
            last, bars = None, 0
    return closes


@pytest.mark.parametrize("form", ["AABB", "ABC", "AABBCC"])
def test_every_part_of_a_form_closes_on_its_tonic(form):
    """Not only the tune's last part: real A parts close on the tonic (87% of the corpus's AABB
    tunes), and the sampler's, held to it only at the tune's end, did in 45%. A first ending, which
    leads back, may close on any note. Random logits, pickups and endings included."""
    engine = RandomEngine(len(VOCABULARY), 3.0, 5)
    results = sample_tunes(engine, VOCABULARY, list(range(60)), conditions=Conditions(rhythm="jig", form=form))
    assert all(r.ok for r in results)
    closes = [_part_closes(r.tokens) for r in results]
    assert all(len(c) == len(form.replace("AA", "A").replace("BB", "B").replace("CC", "C")) for c in closes)
    assert all(token.lstrip("=")[:1] in ("C", "c") for c in closes for token in c), closes
    if "AA" in form:  # endings were drawn for repeated parts, and their first ending is free
        assert any("[1" in r.tokens for r in results)


def test_a_primed_part_closes_where_the_musician_closed_it(shipped):
    """A prime is the musician's: its A part may close off the tonic (here on the fifth, G in C) and
    the form still holds; only the tune's last part, the model's, closes on the tonic."""
    engine, vocabulary = shipped
    bar = ["c", "d", "e", "f", "g", "a", "g", "e", "|"]
    prime = tuple(["|:"] + bar * 7 + ["d", "e", "f", "d", "G", "2", "G", "2", ":|"])
    result = sample_tunes(engine, vocabulary, [3], conditions=Conditions(rhythm="reel", meter="4/4", prime=prime))[0]
    assert result.ok, result.failures
    assert _part_closes(result.tokens)[0] == "G" and _part_closes(result.tokens)[-1].lstrip("=")[:1] in ("C", "c")


def test_a_second_ending_does_not_copy_the_first():
    """Two endings that are the same bar say nothing: a second ending that has copied the first up to
    its last note may not take that note, nor a rest instead (the grammar alone allows both); one that
    differs already, or the first ending's own last note, is left alone."""
    from folkrnn.sample import AbcConstraint, SampleConfig, _plan

    config = SampleConfig()
    constraint = AbcConstraint(_plan(VOCABULARY, Conditions(rhythm="jig", form="free"), config), config,
                               VOCABULARY)
    head = ["T", "h", "e", "R:jig", "M:6/8", "K:Cmaj", "|:"] + ["c", "6", "|"] * 3
    first = ["[1", "e", "d", "c", "G", "2"]

    def row_after(tokens):
        row = constraint.start(0, 0)
        row.forced = []
        for token in tokens:
            assert constraint.advance(row, VOCABULARY.id(token), True) == "", token
        return row

    def masks(tokens):
        row = row_after(tokens)
        restricted = {VOCABULARY.token(i) for i in np.flatnonzero(constraint.masks([row])[0])}
        alone = {VOCABULARY.token(i) for i in np.flatnonzero(constraint.grammar.mask(row.sid))}
        return restricted, alone

    copied, alone = masks(head + first + ["G", ":|", "[2", "e", "d", "c", "G", "2"])
    assert {"G", "z"} <= alone and "G" not in copied and "z" not in copied and "A" in copied
    differs, alone = masks(head + first + ["G", ":|", "[2", "e", "d", "B", "G", "2"])
    assert {"G", "z"} <= differs
    in_first, alone = masks(head + first)
    assert {"G", "z"} <= in_first
    # a first ending whose last note has a length of its own: the pitch may not come again there
    # (a second ending of the same notes with the last one split, e2dd for e2d2, says as little)
    held, alone = masks(head + ["[1", "e", "d", "c", "G", "3", ":|", "[2", "e", "d", "c"])
    assert {"G", "z"} <= alone and "G" not in held and "z" not in held and "A" in held
    # a rest that ends the first ending is not copied either
    rested, _ = masks(head + ["[1", "e", "d", "c", "G", "2", "z", ":|", "[2", "e", "d", "c", "G", "2"])
    assert "z" not in rested and "x" not in rested and "G" in rested
    # with the grammar off (--no-constrain), the model writes what it likes
    raw = SampleConfig(constrain=False)
    loose = AbcConstraint(_plan(VOCABULARY, Conditions(rhythm="jig", form="free"), raw), raw, VOCABULARY)
    row = loose.start(0, 0)
    row.forced = []
    for token in head + first + ["G", ":|", "[2", "e", "d", "c", "G", "2"]:
        assert loose.advance(row, VOCABULARY.id(token), True) == "", token
    assert loose.masks([row])[0][VOCABULARY.id("G")]


@pytest.mark.slow
def test_the_first_rest_penalty_leaves_rests_to_the_tunes_that_rest():
    """SampleConfig.first_rest: taken from a rest's logit until the tune has one, so fewer tunes rest
    at all, while those that do rest as freely as before (the penalty is gone after the first)."""
    from folkrnn.sample import AbcConstraint, SampleConfig, _first_rest, _plan

    engine, seeds = RandomEngine(len(VOCABULARY), 3.0, 11), list(range(150))
    conditions = Conditions(rhythm="reel", form="AABB")

    def rests(config):
        tunes = [detokenize(r.tokens) for r in sample_tunes(engine, VOCABULARY, seeds, config=config,
                                                             conditions=conditions) if r.ok]
        return sum(form_of(text).rest_inside for text in tunes) / len(tunes)

    assert rests(SampleConfig(first_rest=3.0)) < rests(SampleConfig()) - 0.1
    # a tune that rests, replayed: one row up to its first rest in the body, one just after it
    config = SampleConfig(first_rest=3.0)
    constraint = AbcConstraint(_plan(VOCABULARY, conditions, config), config, VOCABULARY)
    tune = next(r for r in sample_tunes(engine, VOCABULARY, seeds, conditions=conditions)
                if r.ok and form_of(detokenize(r.tokens)).rest_inside)
    before, after = constraint.start(0, 0), constraint.start(1, 0)
    before.forced = after.forced = []
    rest = None
    for token in VOCABULARY.encode(tune.tokens[1:]):
        assert constraint.advance(after, token, True) == ""
        if after.rested:
            rest = token
            break
        assert constraint.advance(before, token, True) == ""
    assert rest is not None and not before.rested and VOCABULARY.tokens[rest] in ("z", "x")
    rows = [before, after]
    logits = np.zeros((2, len(VOCABULARY)), np.float32)
    adjusted = _first_rest(logits, rows, 3.0, constraint._rests, constraint.grammar)
    assert adjusted[0, rest] == -3.0 and adjusted[1, rest] == 0.0 and logits[0, rest] == 0.0
    with pytest.raises(OptionError, match="first-rest"):
        SampleConfig(first_rest=-1).check()


def test_a_hornpipe_breaks_its_rhythm_only_on_a_pair_of_eighths():
    """abc2midi plays a hornpipe's eighths in pairs from each beat, and refuses a > or < that joins
    two pairs ("Cannot apply broken rhythm. Notes not equal durations", found on a generated
    hornpipe's ``gg>ge``): the grammar lets a broken rhythm follow an eighth only on the beat there."""
    from folkrnn.abc.grammar import AbcGrammar

    tokens = ["<s>", "</s>", "R:hornpipe", "R:reel", "M:4/4", "M:2/4", "K:Cmaj", "C", "2", "/2", ">", "|"]

    def allowed(rhythm: str, before: list[str], meter: str = "M:4/4") -> bool:
        grammar = AbcGrammar(tokens)
        sid = grammar.start
        for token in [rhythm, meter, "K:Cmaj"] + before:
            sid = grammar.next(sid, tokens.index(token))
            assert sid >= 0, token
        return bool(grammar.mask(sid)[tokens.index(">")])

    assert allowed("R:hornpipe", ["C"]) and allowed("R:hornpipe", ["C", "C", "C"])
    assert not allowed("R:hornpipe", ["C", "C"]) and not allowed("R:hornpipe", ["C", "2", "C", "C"])
    assert allowed("R:hornpipe", ["C", "C", "2"])  # a quarter: no pair to break
    assert allowed("R:reel", ["C", "C"])
    # in 2/4 abc2midi pairs sixteenths (an eighth of the bar): an eighth may break off the beat
    assert allowed("R:hornpipe", ["C", "C"], "M:2/4") and not allowed("R:hornpipe", ["C", "/2", "C", "/2"], "M:2/4")


@pytest.mark.slow
def test_sampled_hornpipes_play_in_abc2midi_without_an_error(shipped, tmp_path):
    """The shipped model's hornpipes, broken rhythms and all, as abc2midi plays them: no error. (Its
    hornpipe mode pairs eighths by itself, and random logits' grace groups and rests in tuplets can
    still upset that pairing; the model's tunes do not write those.)"""
    engine, vocabulary = shipped
    results = sample_tunes(engine, vocabulary, list(range(80)), conditions=Conditions(rhythm="hornpipe"))
    texts = [detokenize(r.tokens) for r in results if r.ok]
    assert len(texts) == 80 and sum(">" in text or "<" in text for text in texts) >= 20
    messages = abc2midi_messages(texts, tmp_path)
    assert not [line for line in messages if "Error" in line], messages


def _rhythm(tokens):
    return next(token[2:] for token in tokens if token.startswith("R:"))


def test_a_tune_nobody_asked_a_rhythm_for_is_a_dance_as_often_as_the_share_says():
    """Untitled and unasked, a tune is a dance DANCE_SHARE of the time (drawn from its seed), and
    otherwise one of the other rhythms the model knows (song, other): the corpus holds them too. The
    draw picks the kind alone: a tune drawn to be a dance is the one ``rhythm="dance"`` makes."""
    from folkrnn.tables import DANCE_SHARE

    engine, seeds = RandomEngine(len(VOCABULARY), 3.0, 11), list(range(300))
    tunes = sample_tunes(engine, VOCABULARY, seeds)
    dances = sample_tunes(engine, VOCABULARY, seeds, conditions=Conditions(rhythm="dance"))
    assert all(r.ok for r in tunes + dances)
    assert not [why for r in tunes for _, why in r.failures if "no allowed token" in why]  # never a dead end
    kinds = [_rhythm(r.tokens) for r in tunes]
    danced = [DANCES[kind].meters != () for kind in kinds]
    share = sum(danced) / len(seeds)
    assert abs(share - DANCE_SHARE) < 4 * (DANCE_SHARE * (1 - DANCE_SHARE) / len(seeds)) ** 0.5, share
    assert {kind for kind, dance in zip(kinds, danced) if not dance} <= {"song", "other"}
    assert all(DANCES[_rhythm(r.tokens)].meters for r in dances)  # "dance": always one
    # (a tune retried with the next seed, after random logits ran it into the length guard, aside)
    assert all(a.tokens == b.tokens for a, b, dance in zip(tunes, dances, danced) if dance and not a.failures)
    assert [r.tokens for r in sample_tunes(engine, VOCABULARY, seeds[:20])] == [r.tokens for r in tunes[:20]]
    for rhythm in ("any", "other"):  # asked for: no draw
        asked = sample_tunes(engine, VOCABULARY, seeds[:40], conditions=Conditions(rhythm=rhythm))
        assert rhythm == "any" or all(_rhythm(r.tokens) == "other" for r in asked)


def _loose_parts(conditions, seeds, salt=3, config=None):
    """Tunes of random logits and their parts' bars; those with first and second endings left out
    (random logits write them often, the model all but never: a second ending that runs on past the
    first's length is read by the form scanner as a part of its own)."""
    engine = RandomEngine(len(VOCABULARY), 3.0, salt)
    results = sample_tunes(engine, VOCABULARY, seeds, conditions=conditions, config=config)
    assert all(r.ok for r in results)
    assert not [why for r in results for _, why in r.failures if "no allowed token" in why]  # never a dead end
    results = [r for r in results if "[1" not in r.tokens]
    assert len(results) > len(seeds) / 2
    forms = [form_of(detokenize(r.tokens)) for r in results]
    return results, [part.bars for form in forms for part in form.parts]


def test_a_loose_forms_parts_close_as_the_corpus_parts_of_its_rhythm_do():
    """A rhythm with no usual form keeps parts of whole 4-bar phrases; whether a part closes after
    its 1st, 2nd or 3rd phrase is drawn from the tune's seed at the corpus's shares for its rhythm
    (Dance.part_closes), and a part held to close does so on its tonic, as a strict form's parts
    do. The model alone ran on: with random logits, 4-bar parts were 5% of other tunes' parts."""
    from collections import Counter

    closes = DANCES["other"].part_closes
    results, lengths = _loose_parts(Conditions(rhythm="other"), list(range(300)))
    count, counted = len(lengths), Counter(lengths)
    assert set(counted) <= {4, 8, 12, 16} and count > 300
    reach = 1.0
    for k, bars in enumerate((4, 8, 12, 16)):
        share = reach * (closes[k] if k < len(closes) else 1.0)
        assert abs(counted[bars] / count - share) < 4 * (share * (1 - share) / count) ** 0.5 + 0.01, (bars, counted)
        reach -= share
    assert all(token.lstrip("=")[:1] in ("C", "c") for r in results for token in _part_closes(r.tokens))
    # --part-bars given: the parts are the model's own phrases (no draw), and close on any note
    _, own = _loose_parts(Conditions(rhythm="other", part_bars=4), list(range(250)))
    assert abs(Counter(own)[4] / len(own) - closes[0]) > 0.1


@pytest.mark.parametrize("closes, bars", [((1.0, 1.0, 1.0), 4), ((0.0, 0.0, 0.0), 16), ((0.0, 1.0, None), 8)])
def test_a_loose_part_closes_where_it_is_held_to(monkeypatch, closes, bars):
    from dataclasses import replace

    from folkrnn import tables
    from folkrnn.sample import SampleConfig

    monkeypatch.setitem(tables.DANCES, "other", replace(tables.DANCES["other"], part_closes=closes))
    # (room for four 16-bar parts of random logits: the length guard's request to end closes a part)
    results, lengths = _loose_parts(Conditions(rhythm="other"), list(range(40)), salt=4,
                                    config=SampleConfig(max_tokens=5000))
    assert set(lengths) == {bars}
    assert all(token.lstrip("=")[:1] in ("C", "c") for r in results for token in _part_closes(r.tokens))


def test_a_loose_part_held_to_go_on_still_ends_when_the_length_guard_asks():
    """A loose part held to go on past a phrase's last bar (part_close) that meets the length
    guard's request to end there closes with that bar instead, on its tonic; and an ending begun
    in that bar is free of the hold, so a first ending asked to end inside it is no dead end."""
    from folkrnn.abc.grammar import AbcGrammar

    tokens = ["<s>", "</s>", "R:other", "M:4/4", "L:1/8", "K:Cmaj", "C", "D", "4", "8", "|", "||", ":|", "|:",
              "[1", "[2"]
    grammar = AbcGrammar(tokens, rhythm_forms={tokens.index("R:other"): Form((), 4)})
    sid = grammar.start
    for token in ["R:other", "M:4/4", "L:1/8", "K:Cmaj", "|:", "C", "8", "|", "C", "8", "|", "C", "8", "|"]:
        sid = grammar.next(sid, tokens.index(token))
        assert sid >= 0, token
    assert grammar.phrase_bar(sid) == 1
    goes_on = grammar.part_close(sid, False)
    # asked to end in the bar held to go on: the part closes with it (:| on the tonic), not 4 bars on
    ending = grammar.closing(goes_on)
    bar = grammar.next(grammar.next(grammar.next(ending, tokens.index("D")), tokens.index("4")),
                       tokens.index("C"))
    bar = grammar.next(bar, tokens.index("4"))
    assert [tokens[i] for i in np.flatnonzero(grammar.mask(bar))] == ["</s>"]
    assert grammar.eos_fix(bar) == ("append", ":|")
    # a first ending begun in that bar, then asked to end: its bar closes with :|
    first = grammar.closing(grammar.next(goes_on, tokens.index("[1")))
    bar = grammar.next(grammar.next(grammar.next(first, tokens.index("C")), tokens.index("4")), tokens.index("D"))
    bar = grammar.next(bar, tokens.index("4"))
    assert bar >= 0 and grammar.mask(bar).any()
