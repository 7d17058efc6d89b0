"""The corpus: sources, folk-rnn's data format, de-duplication, the split, the cache, stats, export
and the `folkrnn corpus` commands, on small inline corpora whose counts are worked out by hand."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from typer.testing import CliRunner

import folkrnn.abc
import folkrnn.corpus
from folkrnn.abc import Normalisation, tokenize
from folkrnn.cli import app
from folkrnn.corpus import (
    COLLECTIONS,
    DEFAULT_COLLECTIONS,
    SPLITS,
    Rendering,
    body_of,
    build_corpus,
    corpus_stats,
    export_split,
    export_text,
    folkrnn_to_abc,
    looks_like_folkrnn,
    read_tunes,
    resolve_sources,
    split_of,
    write_manifest,
)
from folkrnn.errors import CorpusError, FolkError, OptionError

ALPHA = """X:1
T:Alpha
R:reel
M:4/4
L:1/8
K:G
GABc d2B2|c2A2 G4|]
"""
BETA = """X:2
T:Beta
R:jig
M:6/8
L:1/8
K:Ador
A2B c2d|e2d c2B|]
"""
BROKEN = """X:3
T:Broken
M:4/4
L:1/8
K:Bn
ABcd|
"""
# Alpha again: another title, R: spelling, meter spelling, unit length and key; the same notes
ALPHA_AGAIN = """X:7
T:Alpha again
R:Reel
M:C
L:1/16
K:A
A2B2c2d2 e4c4|d4B4 A8|]
"""
GAMMA = """X:8
T:Gamma
R:polka
M:2/4
L:1/8
K:C
cd ec|d2 c2|]
"""
FOLKRNN = """M:3/4
K:Cmaj
C 2 E 2 G 2 | c 6 |]

M:6/8
K:Cmin
c 2 B c 2 d | e 3 c 3 |]
"""


@pytest.fixture()
def library(tmp_path):
    """A folder of two ABC files (one tune broken, one duplicated across them) and a folk-rnn file."""
    folder = tmp_path / "lib"
    (folder / "sub").mkdir(parents=True)
    (folder / "a_tunes.abc").write_text(ALPHA + "\n" + BETA + "\n" + BROKEN, encoding="utf-8")
    (folder / "sub" / "more.abc").write_text(ALPHA_AGAIN + "\n" + GAMMA, encoding="utf-8")
    (folder / "notes.txt").write_text("not a tune file: folders give only *.abc", encoding="utf-8")
    folk = tmp_path / "folk.txt"
    folk.write_text(FOLKRNN, encoding="utf-8")
    return {"folder": str(folder), "folk": str(folk), "cache": tmp_path / "cache", "tmp": tmp_path}


def _build(library, **options):
    options.setdefault("cache_dir", library["cache"])
    options.setdefault("workers", 1)
    return build_corpus([library["folder"], library["folk"]], **options)


def _all(corpus):
    return [tokens for name in SPLITS for tokens in corpus.split(name)]


def _title(tokens):
    title = []
    for token in tokens[1:]:
        if ":" in token and len(token) > 1:
            break
        title.append(" " if token == folkrnn.abc.SPACE else token)
    return "".join(title)


# --- folk-rnn's data format -----------------------------------------------------------------

def test_folkrnn_format_is_detected_by_content():
    assert looks_like_folkrnn(FOLKRNN)
    assert not looks_like_folkrnn(ALPHA)  # has X:
    assert not looks_like_folkrnn("T:No X\nM:4/4\nK:G\nGABc dedB|c2A2 G4|]\n")  # ABC, no X:


def test_folkrnn_tune_becomes_abc_and_tokens():
    abc = folkrnn_to_abc("M:6/8\nK:Cmin\nc 2 B c 2 d | e 3 c 3 :| |: G 2 A B 2 c |]", number=4)
    assert abc.splitlines() == ["X:4", "M:6/8", "L:1/8", "K:Cmin",
                                "c2Bc2d | e3c3 :| |: G2AB2c |]"]
    # folk-rnn v3's mode-only K: means C
    assert "K:Cmaj" in folkrnn_to_abc("M:4/4\nK:maj\nc d e f |]").splitlines()


def test_folkrnn_file_reads_as_tunes(library):
    tunes = read_tunes(library["folk"])
    assert [tune.number for tune in tunes] == ["1", "2"]
    assert [tune.line for tune in tunes] == [1, 5]
    assert tokenize(tunes[1].text) == ["<s>", "R:other", "M:6/8", "K:Cmin", "c", "2", "B", "c",
                                       "2", "d", "|", "e", "3", "c", "3", "||", "</s>"]


# --- build: sources, duplicates, rejections -------------------------------------------------

def test_build_counts_duplicates_and_rejections(library):
    corpus = _build(library)
    info = corpus.info
    folder, folk = info["sources"]
    # a_tunes.abc: Alpha, Beta, Broken; sub/more.abc: Alpha again (duplicate), Gamma
    assert (folder["files"], folder["tunes"], folder["rejected"], folder["duplicates"],
            folder["kept"]) == (2, 5, 1, 1, 3)
    assert (folk["files"], folk["tunes"], folk["rejected"], folk["duplicates"],
            folk["kept"]) == (1, 2, 0, 0, 2)
    assert len(corpus) == 5 and info["duplicates"] == 1 and info["rejected"] == 1
    titles = sorted(_title(tokens) for tokens in _all(corpus))
    assert titles == ["", "", "Alpha", "Beta", "Gamma"]  # the first Alpha is kept
    assert info["duplicate_examples"] == [{"tune": f"{library['folder']}/sub/more.abc#7",
                                           "duplicate_of": f"{library['folder']}/a_tunes.abc#1"}]
    rejection = info["rejections"][0]
    assert (rejection["file"], rejection["tune"], rejection["title"], rejection["line"]) == (
        f"{library['folder']}/a_tunes.abc", "3", "Broken", 17)
    assert "K:" in rejection["reason"] and "a_tunes.abc:21" in rejection["message"]
    assert info["settings"] == Normalisation().to_dict()


def test_no_duplicate_bodies_and_no_leakage_between_splits(library):
    corpus = _build(library, valid_fraction=0.3, test_fraction=0.3)
    bodies = {name: [tuple(body_of(tokens)) for tokens in corpus.split(name)] for name in SPLITS}
    every = [body for name in SPLITS for body in bodies[name]]
    assert len(every) == len(set(every)) == 5
    assert not set(bodies["train"]) & set(bodies["valid"])
    assert not set(bodies["train"]) & set(bodies["test"])
    assert not set(bodies["valid"]) & set(bodies["test"])


def test_split_follows_the_documented_hash(library):
    corpus = _build(library, seed=3, valid_fraction=0.25, test_fraction=0.25)
    for name in SPLITS:
        for tokens in corpus.split(name):
            body = body_of(tokens)
            digest = hashlib.sha1(b"3:" + "\x1f".join(body).encode()).digest()
            position = int.from_bytes(digest[:8], "big") / 2 ** 64
            expected = "test" if position < 0.25 else "valid" if position < 0.5 else "train"
            assert name == expected
            assert split_of(body, seed=3, valid_fraction=0.25, test_fraction=0.25) == name


def test_a_tune_in_halved_notation_is_learned_in_whole_bars_and_keeps_its_split(tmp_path):
    """A 2/4 reel in sixteenths is kept in 2/2 eighths, in the split its tokens as written give
    (the one a MIDI corpus played from the same file puts it in), and a duplicate of it as written
    is still found."""
    halved = "T:Halved\nR:reel\nM:2/4\nL:1/16\nK:G\n" + "GABc dBAG|FGAB cAFA|GABc dBAG|FAdc BGG2:|\n"
    (tmp_path / "reels.abc").write_text(f"X:1\n{halved}\nX:2\n{halved}")
    corpus = build_corpus([str(tmp_path)], use_cache=False, valid_fraction=0.3, test_fraction=0.3)
    assert corpus.info["duplicates"] == 1
    [(name, tokens)] = [(name, tokens) for name in SPLITS for tokens in corpus.split(name)]
    assert "M:2/2" in tokens and "/2" not in tokens
    written = tokenize("X:1\n" + halved, Normalisation(whole_bars=False))
    assert "M:2/4" in written and body_of(written) != body_of(tokens)
    assert name == split_of(body_of(written), valid_fraction=0.3, test_fraction=0.3)
    played = build_corpus([str(tmp_path)], encoding="midi", use_cache=False, valid_fraction=0.3, test_fraction=0.3)
    assert [len(played.split(each)) > 0 for each in SPLITS] == [each == name for each in SPLITS]


def test_split_is_deterministic_and_stable_when_tunes_are_added(library):
    first = _build(library, use_cache=False, valid_fraction=0.3, test_fraction=0.3)
    again = _build(library, use_cache=False, valid_fraction=0.3, test_fraction=0.3)
    assert (first.train, first.valid, first.test) == (again.train, again.valid, again.test)
    assert first.content_hash == again.content_hash
    alone = build_corpus([library["folder"]], use_cache=False, workers=1,
                         valid_fraction=0.3, test_fraction=0.3)
    for name in SPLITS:  # adding the folk-rnn file moved none of the folder's tunes
        assert all(tokens in first.split(name) for tokens in alone.split(name))
    other_seed = _build(library, use_cache=False, seed=1, valid_fraction=0.3, test_fraction=0.3)
    assert other_seed.info["split"]["seed"] == 1
    assert sorted(map(tuple, _all(other_seed))) == sorted(map(tuple, _all(first)))


def test_two_workers_give_the_same_corpus(library):
    one = _build(library, use_cache=False, workers=1)
    two = _build(library, use_cache=False, workers=2)
    assert one.content_hash == two.content_hash
    assert one.origins == two.origins


def test_sources_resolve_music21_collections_by_name(library):
    corpus = build_corpus(["miscFolk", library["folk"]], cache_dir=library["cache"])
    names = [source["name"] for source in corpus.info["sources"]]
    assert names == ["miscFolk", library["folk"]]
    assert corpus.info["sources"][0]["origin"] == "music21"
    assert corpus.info["sources"][0]["tunes"] == 185  # X: lines in music21's miscFolk files


DANCE_COLLECTIONS = ["oneills1850", "ryansMammoth", "airdsAirs", "miscFolk"]


def test_default_corpus_is_the_dance_collections_and_essen_is_named():
    """One table of collections: the default corpus is the dance music, in this order (which
    decides the duplicate kept); Essen stays known by name but is left out of the default."""
    assert [c.name for c in DEFAULT_COLLECTIONS] == DANCE_COLLECTIONS
    assert [c.name for c in COLLECTIONS if c.default] == DANCE_COLLECTIONS
    assert {c.name for c in COLLECTIONS} == {*DANCE_COLLECTIONS, "essenFolksong"}
    assert [s.name for s in resolve_sources(None)] == DANCE_COLLECTIONS
    assert [s.name for s in resolve_sources(["default"])] == DANCE_COLLECTIONS
    essen = resolve_sources(["essenFolksong", "music21:miscFolk"])
    assert [(s.name, s.origin) for s in essen] == [("essenFolksong", "music21"), ("miscFolk", "music21")]
    assert "Non-commercial" in essen[0].licence and essen[0].path.name == "essenFolksong"
    with pytest.raises(CorpusError, match="essenFolksong"):  # the message lists every collection
        resolve_sources(["music21:nope"])


# --- cache ----------------------------------------------------------------------------------

def test_cache_hit_and_rebuild_on_change(library, monkeypatch):
    cold = _build(library)
    assert not cold.from_cache and cold.cache_path is not None and cold.cache_path.is_file()
    with open(cold.cache_path, encoding="utf-8") as stream:
        stored = json.load(stream)  # plain JSON, no pickle
    assert stored["key"] == cold.info["cache_key"]
    warm = _build(library)
    assert warm.from_cache and warm.content_hash == cold.content_hash
    assert (warm.train, warm.valid, warm.test) == (cold.train, cold.valid, cold.test)
    assert warm.origins == cold.origins

    # the title cleaning is part of the settings, so of the key: turning it off rebuilds
    raw_titles = _build(library, settings=Normalisation(clean_titles=False))
    assert not raw_titles.from_cache and raw_titles.info["cache_key"] != cold.info["cache_key"]
    assert raw_titles.info["settings"]["clean_titles"] is False
    # the normalisation changes: rebuilt, without titles
    untitled = _build(library, settings=Normalisation(title=False))
    assert not untitled.from_cache and all(_title(t) == "" for t in _all(untitled))

    # the tokenizer's version changes: rebuilt
    monkeypatch.setattr(folkrnn.abc, "TOKENIZER_VERSION", 10 ** 6)
    assert not _build(library).from_cache
    assert _build(library).from_cache
    monkeypatch.undo()

    # a source file changes: rebuilt, with the new tune
    more = os.path.join(library["folder"], "sub", "more.abc")
    with open(more, "a", encoding="utf-8") as stream:
        stream.write("\nX:9\nT:Delta\nM:3/4\nL:1/8\nK:D\nd2 f2 a2|d6|]\n")
    changed = _build(library)
    assert not changed.from_cache and len(changed) == len(cold) + 1


def test_corrupt_cache_is_rebuilt(library):
    cold = _build(library)
    cold.cache_path.write_text('{"format": 1, "key": "tru', encoding="utf-8")
    again = _build(library)
    assert not again.from_cache and again.content_hash == cold.content_hash
    assert _build(library).from_cache


def test_no_cache_writes_nothing(library):
    corpus = _build(library, use_cache=False)
    assert corpus.cache_path is None and not library["cache"].exists()


# --- stats ----------------------------------------------------------------------------------

def test_stats_counts_worked_out_by_hand(library):
    stats = corpus_stats(_build(library))
    assert stats["tunes"]["total"] == 5
    assert stats["rhythm"] == {"other": 2, "reel": 1, "jig": 1, "polka": 1}
    assert stats["meter"] == {"6/8": 2, "4/4": 1, "2/4": 1, "3/4": 1}
    assert stats["mode"] == {"Cmaj": 3, "Cdor": 1, "Cmin": 1}
    # Alpha 1+5+3+16+1, Beta 1+4+3+14+1, Gamma 1+5+3+10+1, folk-rnn 1+3+10+1 and 1+3+12+1
    assert stats["tokens"]["total"] == 26 + 23 + 20 + 15 + 17
    assert sum(stats["tokens"][name] for name in SPLITS) == stats["tokens"]["total"]
    assert stats["tokens"]["max_per_tune"] == 26
    # <s> </s>; 11 header tokens; title letters A l p h a B e t G m; body
    # c d e f g 2 | 4 || C E G 6 B 3 (e, B and G also in titles): 2 + 11 + 10 + 15 - 3
    assert stats["vocabulary"]["size"] == 35
    assert stats["duplicates"] == 1
    assert stats["rejected"]["total"] == 1
    assert stats["rejected"]["by_reason"] == {"bad K: field": 1}
    assert "Broken" in stats["rejected"]["examples"][0]


# --- export ---------------------------------------------------------------------------------

def test_export_is_one_tune_a_line_and_reads_back(library, tmp_path):
    corpus = _build(library, valid_fraction=0, test_fraction=0)
    text = export_split(corpus, "train")
    lines = text.splitlines()
    assert len(lines) == len(corpus.train) == 5
    assert [line.split(" ") for line in lines] == corpus.train
    assert "Alpha" not in text and "A l p h a" in text
    out = tmp_path / "train.txt"
    assert export_split(corpus, "train", out) == out and out.read_text(encoding="utf-8") == text
    with pytest.raises(OptionError, match="--force"):
        export_split(corpus, "train", out)
    # folk-rnn's one-tune-a-line format reads back as the same tokens
    back = build_corpus([str(out)], use_cache=False, valid_fraction=0, test_fraction=0)
    assert back.train == corpus.train
    assert export_text([["a", "b"], ["c"]]) == "a b\nc\n"


# --- bad input ------------------------------------------------------------------------------

def test_bad_sources_raise_one_line_corpus_errors(tmp_path):
    cases = []
    with pytest.raises(CorpusError, match="no such file") as caught:
        build_corpus([str(tmp_path / "missing.abc")], use_cache=False)
    cases.append(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no \\*.abc files") as caught:
        build_corpus([str(tmp_path / "empty")], use_cache=False)
    cases.append(caught.value)
    binary = tmp_path / "noise.abc"
    binary.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(FolkError, match="binary") as caught:
        build_corpus([str(binary)], use_cache=False)
    cases.append(caught.value)
    broken = tmp_path / "broken.abc"
    broken.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(CorpusError, match="no valid tunes") as caught:
        build_corpus([str(broken)], use_cache=False)
    cases.append(caught.value)
    with pytest.raises(CorpusError, match="unknown music21 collection") as caught:
        build_corpus(["music21:nope"], use_cache=False)
    cases.append(caught.value)
    with pytest.raises(OptionError):
        build_corpus([str(broken)], use_cache=False, valid_fraction=0.6, test_fraction=0.6)
    for error in cases:
        assert "\n" not in str(error)


def test_binary_and_empty_files_in_a_folder_are_reported_and_skipped(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.abc").write_text(GAMMA, encoding="utf-8")
    (folder / "noise.abc").write_bytes(b"\x00\x01\x02\xff" * 100)
    (folder / "blank.abc").write_text("\n\n", encoding="utf-8")
    corpus = build_corpus([str(folder)], use_cache=False, valid_fraction=0, test_fraction=0)
    assert len(corpus) == 1
    source = corpus.info["sources"][0]
    assert (source["files"], source["files_skipped"]) == (1, 2)
    messages = sorted(rejection["message"] for rejection in corpus.info["rejections"])
    assert "empty" in messages[0] and "blank.abc" in messages[0]
    assert "binary" in messages[1] and "noise.abc" in messages[1]
    (folder / "good.abc").unlink()
    with pytest.raises(CorpusError, match="no valid tunes"):
        build_corpus([str(folder)], use_cache=False)


def test_midi_encoding(tmp_path):
    import pretty_midi

    folder = tmp_path / "midi"
    folder.mkdir()
    music = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes += [pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=0.5),
                    pretty_midi.Note(velocity=80, pitch=64, start=0.5, end=1.0)]
    music.instruments.append(piano)
    music.write(str(folder / "two.mid"))
    (folder / "broken.mid").write_bytes(b"MThd garbage")
    corpus = build_corpus([str(folder)], encoding="midi", use_cache=False,
                          valid_fraction=0, test_fraction=0)
    assert corpus.encoding == "midi" and len(corpus.train) == 1
    tokens = corpus.train[0]
    assert tokens[0] == "<s>" and tokens[-1] == "</s>"
    assert sum(token.startswith("NOTE_ON") for token in tokens) == 2
    assert corpus.info["rejected"] == 1  # broken.mid, reported and skipped


# --- the MIDI corpus of played ABC tunes ----------------------------------------------------

def _tune_of(origin: str) -> str:
    """A performance's origin without its rendering number (``file#X@2`` -> ``file#X``)."""
    return origin.rsplit("@", 1)[0]


def _check_played(midi, abc, renderings: int) -> None:
    """Every kept ABC tune is played ``renderings`` times, all its performances in its ABC split."""
    from folkrnn.events import EventConfig, events_to_notes, names_to_ids

    config = EventConfig(controls=True)  # a MIDI corpus's default: performances open with their controls
    names = set(config.names())
    for name in SPLITS:
        tunes = [_tune_of(origin) for origin in midi.origins[name]]
        assert sorted(set(tunes)) == sorted(abc.origins[name])
        assert all(tunes.count(tune) == renderings for tune in set(tunes))
        for tokens in midi.split(name):
            assert tokens[0] == "<s>" and tokens[-1] == "</s>" and set(tokens[1:-1]) <= names
    assert [token.split("_")[0] for token in midi.train[0][1:5]] == ["TEMPO", "METER", "KEY", "DENSITY"]
    notes = events_to_notes(names_to_ids(midi.train[0][1:-1], config), config)
    assert len(notes) >= 4 and notes[-1].end > 1.0


@pytest.fixture()
def small_default(monkeypatch):
    """The default corpus cut down to music21's miscFolk collection (185 tunes), so that the
    no-source path runs in seconds."""
    collection = folkrnn.corpus._COLLECTIONS_BY_NAME["miscFolk"]
    monkeypatch.setattr(folkrnn.corpus, "DEFAULT_COLLECTIONS", (collection,))


def test_default_midi_corpus_is_the_abc_corpus_played(small_default, tmp_path):
    abc = build_corpus(None, cache_dir=tmp_path, workers=1)
    midi = build_corpus(None, encoding="midi", cache_dir=tmp_path, workers=1)
    assert midi.encoding == "midi" and not midi.from_cache
    _check_played(midi, abc, renderings=2)
    assert [source["name"] for source in midi.info["sources"]] == ["miscFolk"]
    source, abc_source = midi.info["sources"][0], abc.info["sources"][0]
    assert all(source[key] == abc_source[key] for key in ("tunes", "kept", *SPLITS))
    rendering = midi.info["rendering"]
    assert rendering["renderings"] == 2 and rendering["seed"] == 0
    assert rendering["performances"] == {name: len(midi.split(name)) for name in SPLITS}
    assert set(midi.info["settings"]) >= {"steps_per_second", "velocity_bins"}  # the EventConfig
    # cached: the same corpus, read back from the packed cache
    cached = build_corpus(None, encoding="midi", cache_dir=tmp_path, workers=1)
    assert cached.from_cache and cached.content_hash == midi.content_hash
    assert cached.train == midi.train and cached.origins == midi.origins
    # the rendering is part of the cache key: one performance a tune is another corpus
    single = build_corpus(None, encoding="midi", cache_dir=tmp_path, workers=1,
                          rendering=Rendering(renderings=1))
    assert not single.from_cache and single.cache_path != midi.cache_path
    _check_played(single, abc, renderings=1)
    assert single.info["rendering"]["renderings"] == 1


def test_played_tunes_are_reproducible_and_seeded(library):
    one = _build(library, encoding="midi", use_cache=False)
    two = _build(library, encoding="midi", use_cache=False, workers=2)
    assert one.content_hash == two.content_hash and one.origins == two.origins
    other = _build(library, encoding="midi", use_cache=False, rendering=Rendering(seed=1))
    assert other.origins == one.origins and other.content_hash != one.content_hash
    _check_played(one, _build(library), renderings=2)


def test_a_midi_corpus_reads_midi_files_and_plays_abc(library, tmp_path):
    from folkrnn.events import EventConfig, PerformanceNote
    from folkrnn.midi import write_performance

    folder = tmp_path / "midi"
    folder.mkdir()
    write_performance([PerformanceNote(60 + k, 0.3 * k, 0.3 * k + 0.25, 70) for k in range(8)],
                      folder / "scale.mid")
    corpus = build_corpus([library["folder"], str(folder)], encoding="midi", use_cache=False,
                          workers=1, valid_fraction=0, test_fraction=0)
    origins = corpus.origins["train"]
    assert sum("@" in origin for origin in origins) == 2 * 3  # Alpha, Beta, Gamma, twice each
    assert [origin for origin in origins if "@" not in origin] == [str(folder) + "/scale.mid"]
    scale = corpus.train[origins.index(str(folder) + "/scale.mid")]
    # <s> </s>, four controls (a file's tempo, meter and key unknown), one VELOCITY, 8 NOTE_ON,
    # 8 NOTE_OFF, 8 shifts of 0.25 s and 7 of 0.05 s
    assert scale[1:4] == ["TEMPO_UNKNOWN", "METER_UNKNOWN", "KEY_UNKNOWN"] and scale[4].startswith("DENSITY_")
    assert scale.count("NOTE_ON_60") == 1 and len(scale) == 2 + 4 + 1 + 8 + 8 + 8 + 7
    assert corpus.info["rendering"]["files"] == 2
    assert corpus.info["settings"] == EventConfig(controls=True).to_dict()


def test_bad_renderings_are_option_errors(library):
    with pytest.raises(OptionError, match="renderings"):
        _build(library, encoding="midi", use_cache=False, rendering=Rendering(renderings=0))
    with pytest.raises(OptionError, match="unknown instrument 'kazoo'"):
        _build(library, encoding="midi", use_cache=False, rendering=Rendering(instruments=("kazoo",)))


def test_cli_builds_the_default_midi_corpus(small_default, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["corpus", "build", "--encoding", "midi", "--cache-dir", str(tmp_path),
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "miscFolk" in result.stdout and "performances: ABC tunes played 2 times" in result.stdout
    stats = runner.invoke(app, ["corpus", "stats", "--encoding", "midi", "--cache-dir", str(tmp_path),
                                "--json"])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert data["encoding"] == "midi" and data["tokens"]["mean_per_tune"] > 100


@pytest.mark.slow
def test_full_default_midi_corpus_keeps_the_abc_split(tmp_path):
    abc = build_corpus(cache_dir=tmp_path)
    midi = build_corpus(encoding="midi", cache_dir=tmp_path)
    _check_played(midi, abc, renderings=2)
    assert len(midi) == 2 * len(abc)


# --- manifest -------------------------------------------------------------------------------

def test_manifest_and_readme_are_generated(library, tmp_path):
    corpus = _build(library)
    manifest_path, readme_path = write_manifest(corpus, tmp_path / "corpora")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["totals"]["tunes"]["total"] == 5
    assert manifest["content_hash"] == corpus.content_hash
    assert [s["kept"] for s in manifest["sources"]] == [3, 2]
    assert all("licence" in s for s in manifest["sources"])
    readme = readme_path.read_text(encoding="utf-8")
    assert "non-commercial" in readme and corpus.content_hash in readme


# --- CLI ------------------------------------------------------------------------------------

def _cli(library, *args):
    runner = CliRunner()
    options = ["--source", library["folder"], "--source", library["folk"],
               "--cache-dir", str(library["cache"])]
    return runner.invoke(app, ["corpus", *args, *options])


def test_cli_build_stats_export(library, tmp_path):
    result = _cli(library, "build", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "5 tunes built" in result.stdout
    result = _cli(library, "build")
    assert result.exit_code == 0 and "read from the cache" in result.stdout

    result = _cli(library, "stats", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["tunes"]["total"] == 5 and stats["rejected"]["total"] == 1
    result = _cli(library, "stats")
    assert result.exit_code == 0 and "rhythm" in result.stdout and "bad K: field" in result.stdout

    corpus = _build(library)
    result = _cli(library, "export", "--split", "train")
    assert result.exit_code == 0
    assert result.stdout == export_text(corpus.train)
    out = tmp_path / "train.txt"
    assert _cli(library, "export", "--split", "train", "--out", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == export_text(corpus.train)
    out.write_text("keep me", encoding="utf-8")
    result = _cli(library, "export", "--split", "valid", "--out", str(out))
    assert result.exit_code != 0 and "--force" in result.stderr
    assert out.read_text(encoding="utf-8") == "keep me"
    result = _cli(library, "export", "--split", "test", "--out", str(out), "--force")
    assert result.exit_code == 0 and out.read_text(encoding="utf-8") == export_text(corpus.test)


def test_cli_bad_source_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["corpus", "build", "--source", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "no such file" in result.stderr and "Traceback" not in result.output


# --- the real default corpus ----------------------------------------------------------------

@pytest.mark.slow
def test_default_corpus_is_plausible(tmp_path):
    corpus = build_corpus(cache_dir=tmp_path)
    sources = {source["name"]: source for source in corpus.info["sources"]}
    assert list(sources) == DANCE_COLLECTIONS  # dance music: no Essen
    expected_read = {"oneills1850": 1900, "ryansMammoth": 1000, "airdsAirs": 1100, "miscFolk": 150}
    for name, at_least in expected_read.items():
        assert sources[name]["tunes"] > at_least
        assert sources[name]["kept"] > 0.9 * sources[name]["tunes"]
    assert 4_000 < len(corpus) < 5_000
    assert corpus.info["duplicates"] > 0
    assert 0.85 < len(corpus.train) / len(corpus) < 0.95
    stats = corpus_stats(corpus)
    assert stats["tokens"]["total"] > 700_000
    assert stats["rhythm"]["reel"] > 500 and stats["rhythm"]["jig"] > 400
    assert stats["rhythm"]["hornpipe"] > 400
    # the titles are clean: no Ryan's "-- Reel", no O'Neill's "Man, The", no all-capitals title
    titles = [_title(tokens) for tokens in _all(corpus)]
    assert not [t for t in titles if " -- " in t or t.endswith(", The") or t.isupper()]
    assert "The Absent Minded Man" in titles and "Sir George Clark's Strathspey" in titles
    cached = build_corpus(cache_dir=tmp_path)
    assert cached.from_cache and cached.seconds < corpus.seconds
    # Essen is still there by name
    essen = build_corpus(["essenFolksong"], cache_dir=tmp_path)
    assert essen.info["sources"][0]["tunes"] > 8000 and len(essen) > 7000
