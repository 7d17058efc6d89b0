"""The shared tables (folkrnn.tables) and their users: every name a table holds works in every
module that takes it, the views other modules keep agree with the tables, and a dance asked for
by ``rhythm`` comes out in its own meters."""

from __future__ import annotations

import ast
import inspect
import re

import pytest
from typer.testing import CliRunner

from conftest import KESH
from folkrnn import cli, compose, evaluate, midi, music, perform, render, tables, validate
from folkrnn.abc import RHYTHMS as TOKENIZER_RHYTHMS
from folkrnn.abc import map_rhythm, parse, tokenize
from folkrnn.compose import ComposeOptions, load_composer, parse_formats
from folkrnn.errors import OptionError
from folkrnn.tables import DANCES, FORMATS, INSTRUMENT_NAMES, INSTRUMENTS, MODES, RHYTHMS


def test_tables_import_nothing_from_folkrnn():
    tree = ast.parse(inspect.getsource(tables))
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name and name.startswith("folkrnn")]


# --- instruments ---------------------------------------------------------------------------------

ALL_NAMES = sorted(INSTRUMENT_NAMES) + ["Uilleann Pipes", "TIN_WHISTLE", " Violin "]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_instrument_name_works_in_every_option_check(name):
    instrument = tables.find_instrument(name)
    assert instrument is not None
    tune = parse(KESH)
    # render's and the MIDI writer's check, and the program it plays
    assert midi.tune_to_performance(tune, instrument=name)
    assert midi._instrument(name) is instrument and instrument.program == midi._instrument(name).program
    # validate's check, and its range
    assert validate.instrument_range(name) is instrument
    report = validate.validate_tune(KESH, options=validate.ValidateOptions(instrument=name))
    assert report.range["instrument"] == instrument.name
    # compose's and generate's check
    ComposeOptions(instrument=name).check()


def test_unknown_instruments_are_refused_everywhere_with_the_same_list():
    names = ", ".join(INSTRUMENTS)
    with pytest.raises(OptionError, match=f"choose one of: {re.escape(names)}$"):
        midi.tune_to_performance(parse(KESH), instrument="kazoo")
    with pytest.raises(OptionError, match=f"choose one of {re.escape(names)}$"):
        validate.instrument_range("kazoo")
    with pytest.raises(OptionError, match=f"choose one of {re.escape(names)}$"):
        ComposeOptions(instrument="kazoo").check()


def test_the_commands_take_each_others_instruments(tmp_path):
    """The two names that failed before: uilleann pipes in render, the piccolo in validate."""
    book = tmp_path / "kesh.abc"
    book.write_text(KESH)
    runner = CliRunner()
    result = runner.invoke(cli.app, ["render", str(book), "--instrument", "uilleann-pipes",
                                     "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    import pretty_midi

    assert pretty_midi.PrettyMIDI(str(tmp_path / "out" / "the-kesh.mid")).instruments[0].program == 109
    result = runner.invoke(cli.app, ["validate", str(book), "--instrument", "piccolo", "--no-novelty"])
    assert result.exit_code == 0, result.output


def test_instrument_table_is_sane():
    for instrument in INSTRUMENTS.values():
        assert 0 <= instrument.program <= 127 and 0 <= instrument.lowest < instrument.highest <= 127
        assert 0 < instrument.articulation <= 1 and instrument.dynamics >= 0
        assert instrument.family in render._TONES
        assert instrument.name == instrument.name.lower() and " " not in instrument.name
    # one fiddle range everywhere: G3 to B6
    assert (INSTRUMENTS["fiddle"].lowest, INSTRUMENTS["fiddle"].highest) == (55, 95)
    assert validate.INSTRUMENTS["fiddle"] is midi.INSTRUMENTS["violin"] is INSTRUMENTS["fiddle"]
    assert "fiddle" in cli._INSTRUMENT_NAMES and "uilleann-pipes" in cli._INSTRUMENT_NAMES


# --- dances and rhythms ----------------------------------------------------------------------------


def test_rhythms_are_the_tokenizers_and_the_clis():
    assert RHYTHMS == TOKENIZER_RHYTHMS == tuple(DANCES)
    # any: no dance imposed; dance: always a dance
    assert [member.value for member in cli.Rhythm] == list(RHYTHMS) + ["any", "dance"]
    assert [member.value for member in cli.Mode] == [mode.name for mode in MODES.values()]


@pytest.mark.parametrize("rhythm", RHYTHMS)
def test_every_dance_and_its_meters_are_tokens_the_tokenizer_writes(rhythm):
    dance = DANCES[rhythm]
    assert map_rhythm(dance.name) == rhythm  # R:slip jig -> R:slipjig
    for meter in dance.meters or ("4/4",):
        numerator, denominator = map(int, meter.split("/"))
        eighths = numerator * 8 // denominator
        text = f"X:1\nT:t\nR:{dance.name}\nM:{meter}\nL:1/8\nK:D\n{'d' * eighths}|{'A' * eighths}|]\n"
        tokens = tokenize(text)
        assert f"R:{rhythm}" in tokens and f"M:{meter}" in tokens, (rhythm, meter, tokens)


def test_dance_forms_meters_and_tempos():
    for name, dance in DANCES.items():
        assert (dance.form == "free") == (dance.part_bars is None), name
        if dance.form != "free":
            assert re.fullmatch(r"(?:([A-Z])\1?)+", dance.form) and dance.part_bars in (8, 16)
        assert set(dance.tonics) == set(MODES)
        assert len(set(dance.meters)) == len(dance.meters)
    # measured: jigs and hornpipes AABB in 8-bar parts; reels AABB by plurality (their parts are 8 bars)
    assert (DANCES["jig"].form, DANCES["jig"].part_bars) == ("AABB", 8)
    assert (DANCES["hornpipe"].form, DANCES["hornpipe"].part_bars) == ("AABB", 8)
    assert (DANCES["reel"].form, DANCES["reel"].part_bars) == ("AABB", 8)
    assert DANCES["air"].meters == DANCES["song"].meters == DANCES["other"].meters == ()
    assert DANCES["jig"].beat == "3/8" and DANCES["reel"].beat == "1/4"
    # MIDI's tempos and lilts are the table's figures
    assert midi.RHYTHM_TEMPOS["reel"] == 200 and midi.RHYTHM_TEMPOS["doublejig"] == 116
    assert midi.RHYTHM_TEMPOS["lament"] == 56 and "other" not in midi.RHYTHM_TEMPOS
    assert midi.LILT == {"hornpipe": 0.60, "clog": 0.60, "strathspey": 0.58, "highland": 0.58,
                         "fling": 0.58, "barndance": 0.58, "germandance": 0.58, "schottische": 0.58}


def test_the_views_of_other_modules_agree_with_the_tables():
    assert compose.DANCE_METERS == {name: d.meters for name, d in DANCES.items() if d.meters}
    assert evaluate.TITLE_TYPES == {"Jig": ("6/8",), "Reel": ("2/2", "4/4"), "Hornpipe": ("4/4",),
                                    "Waltz": ("3/4",), "Polka": ("2/4",)}
    assert compose.MAX_SEED == perform.MAX_SEED == tables.MAX_SEED
    assert music.MODES == {"maj": 0, "lyd": 1, "mix": -1, "dor": -2, "min": -3, "phr": -4, "loc": -5}
    assert music.MODE_NAMES["dor"] == "dorian" and compose.MODE_CODES["aeolian"] == "min"
    # the usual keys: reels in D, jigs in G, E minor, A dorian, D mixolydian, strathspeys in A
    assert [compose.usual_tonic(mode, rhythm) for mode, rhythm in (
        ("maj", "reel"), ("maj", "jig"), ("min", "jig"), ("dor", "reel"), ("mix", ""),
        ("mix", "strathspey"), ("min", "waltz"), ("maj", "nonesuch"))] == \
        ["D", "G", "E", "A", "D", "A", "A", "G"]


# --- formats -------------------------------------------------------------------------------------


def test_every_format_and_alias_is_written_by_render_and_taken_by_compose():
    assert compose.FORMATS == tuple(FORMATS)
    for fmt in FORMATS.values():
        for name in (fmt.name, *fmt.aliases):
            assert render.renderer_for(f".{name}") is render.RENDERERS[f".{fmt.name}"]
            assert parse_formats(name.upper()) == [fmt.name]
    with pytest.raises(OptionError, match="choose from abc, mid, svg, musicxml, wav, pdf"):
        parse_formats("ogg")
    assert sorted(render.formats()) == sorted(s for f in FORMATS.values() for s in (f.name, *f.aliases))


# --- the dance's meters, with the shipped model ----------------------------------------------------


@pytest.mark.parametrize("rhythm", ["jig", "reel"])
def test_rhythm_fixes_the_dances_meters_as_a_title_does(rhythm):
    composer = load_composer()
    meters = tuple(m for m in DANCES[rhythm].meters if f"M:{m}" in composer.vocabulary)
    assert meters, f"the shipped model knows none of the {rhythm}'s meters"
    for seed in range(4):
        composed = compose.compose(ComposeOptions(seed=seed, rhythm=rhythm), composer=composer, write=False)
        assert composed.tune.rhythm == DANCES[rhythm].name and str(composed.tune.meter) in meters
        assert not any("from the title" in warning for warning in composed.warnings)


def test_meter_and_rhythm_options_win_over_the_dance():
    composer = load_composer()
    told = compose.compose(ComposeOptions(seed=1, rhythm="reel", meter="4/4"), composer=composer, write=False)
    assert str(told.tune.meter) == "4/4"
    # an explicit rhythm's meters win over the dance a title names
    mixed = compose.compose(ComposeOptions(seed=2, rhythm="jig", title="The Silver Spear Reel"),
                            composer=composer, write=False)
    assert mixed.tune.rhythm == "jig" and str(mixed.tune.meter) == "6/8"


def test_the_n_line_names_the_mode_as_the_cli_takes_it():
    composed = compose.compose(ComposeOptions(seed=3, mode="aeolian"), write=False)
    assert "--mode minor" in composed.abc
    assert cli.Mode("minor")


def test_moved_names_are_still_found_where_they_were_with_a_warning():
    import folkrnn.corpus
    import folkrnn.events
    import folkrnn.midi
    import folkrnn.validate

    for module, name, owner in ((folkrnn.events, "encode_midi", folkrnn.midi),
                                (folkrnn.events, "decode_to_midi", folkrnn.midi),
                                (folkrnn.validate, "default_novelty_index", folkrnn.corpus)):
        with pytest.warns(DeprecationWarning, match=f"moved to {owner.__name__}.{name}"):
            assert getattr(module, name) is getattr(owner, name)
    with pytest.raises(AttributeError):
        folkrnn.events.no_such_name  # noqa: B018
    with pytest.warns(DeprecationWarning):
        from folkrnn.events import encode_midi  # noqa: F401  (the old import still works)
