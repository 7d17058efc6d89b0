"""The ``folkrnn`` command: parses options, calls one library function, prints, and turns FolkError
into a one-line message with a non-zero exit code. Every command imports what it runs inside its own
function, folkrnn's modules too, so that a command pays only for its own imports (``folkrnn compose``
never loads torch or music21)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from folkrnn import __version__
from folkrnn.errors import FolkError, OptionError
from folkrnn.tables import (
    COLLECTIONS,
    COMPOSE_FORMATS,
    DANCE_SHARE,
    DANCES,
    DEFAULT_COLLECTIONS,
    FORMATS,
    FORMS,
    GENERATE_FORMATS,
    INSTRUMENTS,
    MODES,
    PAPERS,
    RHYTHMS,
)

app = typer.Typer(
    name="folkrnn",
    help="Learn folk tunes from ABC and MIDI collections, and write new ones.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="Build, inspect and export the training corpus.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")

# Help texts naming the choices of folkrnn.tables: "abc (ABC notation), mid (MIDI, ...), ...".
_FORMAT_HELP = ", ".join(f"{name} ({fmt.description})" for name, fmt in FORMATS.items())
_INSTRUMENT_NAMES = ", ".join(INSTRUMENTS)
SoundfontOption = Annotated[Path | None, typer.Option(
    help="WAV: a General MIDI SoundFont (.sf2) that FluidSynth plays the tune with; 'none': folkrnn's own "
    "synthesiser. Default: Debian's fluid-soundfont-gm when it and fluidsynth are installed, else folkrnn's own.")]
PaperOption = Annotated[str, typer.Option(help=f"PDF: the page size: {', '.join(PAPERS)}.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"folkrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    """Learn folk tunes from ABC and MIDI collections, and write new ones."""


def fail(error: FolkError) -> None:
    """Print one line for a person and leave with the error's exit code."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(error.exit_code)


# --- corpus build | stats | export ------------------------------------------------------------

class Split(str, Enum):
    train = "train"
    valid = "valid"
    test = "test"


class CorpusEncoding(str, Enum):
    abc = "abc"
    midi = "midi"


SourceOption = Annotated[list[str] | None, typer.Option(
    "--source", "-s", help=f"A music21 collection ({', '.join(c.name for c in COLLECTIONS)}), 'default' "
    f"for the default corpus ({', '.join(c.name for c in DEFAULT_COLLECTIONS)}), or an ABC file, folk-rnn "
    "data file or folder (*.abc, recursively). Repeat to combine. Without it: the default corpus.")]
EncodingOption = Annotated[CorpusEncoding, typer.Option(
    help="abc: ABC tokens; midi: performance events (MIDI files read, ABC tunes played: without "
    "--source, expressive renderings of the default corpus).")]
SeedOption = Annotated[int, typer.Option(help="Salt of the split hash (0: the standard split).")]
CacheDirOption = Annotated[Path | None, typer.Option(
    help="Cache folder (default: corpora/cache/ in a checkout, else ~/.cache/folkrnn).")]


def _corpus(source, encoding, seed, cache_dir, **options):
    """Build (or load from the cache) the corpus the options name, with a spinner while it works."""
    from rich.console import Console

    from folkrnn.corpus import build_corpus

    with Console(stderr=True).status("reading and tokenising the corpus..."):
        corpus = build_corpus(source or None, encoding=encoding.value, seed=seed,
                              cache_dir=cache_dir, **options)
    if corpus.cache_error:
        typer.echo(f"warning: {corpus.cache_error}", err=True)
    return corpus


@corpus_app.command("build")
def corpus_build(
    source: SourceOption = None,
    encoding: EncodingOption = CorpusEncoding.abc,
    seed: SeedOption = 0,
    cache_dir: CacheDirOption = None,
    rebuild: Annotated[bool, typer.Option(help="Build afresh even if the cache is up to date.")] = False,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Processes that tokenise (default: up to 2).")] = None,
    write_manifest: Annotated[bool, typer.Option(
        help="Write corpora/manifest.json and corpora/README.md (sources, licences, counts).")] = False,
) -> None:
    """Read, tokenise, de-duplicate and split the corpus (90/5/5 by a hash of each tune), and cache it.

    Sources are the default corpus, music21's dance collections (see --source), unless --source names
    others; --source default --source my_tunes/ adds a folder of .abc files to them. Tunes that
    cannot be read are skipped and counted (see `folkrnn corpus stats`).
    """
    from rich.console import Console
    from rich.table import Table

    from folkrnn.corpus import write_manifest as write_manifest_files

    try:
        corpus = _corpus(source, encoding, seed, cache_dir, rebuild=rebuild, workers=workers)
        written = write_manifest_files(corpus) if write_manifest else None
    except FolkError as error:
        fail(error)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a cache is written whole or not at all
        typer.echo("interrupted: the corpus was not built (the cache is as it was)", err=True)
        raise typer.Exit(130) from None
    table = Table(title="corpus", title_justify="left")
    for column in ("source", "files", "tunes", "rejected", "duplicates", "kept", "train", "valid", "test"):
        table.add_column(column, justify="left" if column == "source" else "right",
                         no_wrap=column == "source")
    for entry in corpus.info["sources"]:
        table.add_row(entry["name"], *(f"{entry[key]:,}" for key in (
            "files", "tunes", "rejected", "duplicates", "kept", "train", "valid", "test")))
    console = Console()
    console.print(table)
    how = "read from the cache" if corpus.from_cache else "built"
    console.print(f"{len(corpus):,} tunes {how} in {corpus.seconds:.2f} s; "
                  f"cache: {corpus.cache_path or 'none'}", highlight=False)
    skipped = sum(entry["files_skipped"] for entry in corpus.info["sources"])
    if corpus.info["rejected"] or corpus.info["duplicates"]:
        console.print(f"{corpus.info['duplicates']:,} duplicates removed, "
                      f"{corpus.info['rejected']:,} tunes or files rejected "
                      f"({skipped} files skipped): see `folkrnn corpus stats`", highlight=False)
    rendering = corpus.info.get("rendering")
    if rendering:
        console.print(f"{sum(rendering['performances'].values()):,} performances: ABC tunes played "
                      f"{rendering['renderings']} times each by {', '.join(rendering['instruments'])} "
                      f"(seed {rendering['seed']}), each in its tune's split", highlight=False)
    if written:
        console.print(f"wrote {written[0]} and {written[1]}", highlight=False)


@corpus_app.command("stats")
def corpus_stats_command(
    source: SourceOption = None,
    encoding: EncodingOption = CorpusEncoding.abc,
    seed: SeedOption = 0,
    cache_dir: CacheDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Tunes per collection, rhythm, meter and mode; token counts; vocabulary; rejected tunes and why."""
    import json

    from rich.console import Console
    from rich.table import Table

    from folkrnn.corpus import SPLITS, corpus_stats

    try:
        stats = corpus_stats(_corpus(source, encoding, seed, cache_dir))
    except FolkError as error:
        fail(error)
    if as_json:
        typer.echo(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    console = Console()

    def counts(title: str, column: str, mapping: dict, limit: int = 20) -> None:
        table = Table(title=title, title_justify="left")
        table.add_column(column)
        table.add_column("tunes", justify="right")
        for name, count in list(mapping.items())[:limit]:
            table.add_row(str(name), f"{count:,}")
        if len(mapping) > limit:
            table.add_row(f"... {len(mapping) - limit} more", "")
        console.print(table)

    table = Table(title="tunes per collection", title_justify="left")
    for column in ("source", "tunes", "rejected", "duplicates", "kept", *SPLITS):
        table.add_column(column, justify="left" if column == "source" else "right",
                         no_wrap=column == "source")
    for entry in stats["sources"]:
        table.add_row(entry["name"], *(f"{entry[key]:,}" for key in (
            "tunes", "rejected", "duplicates", "kept", *SPLITS)))
    total = stats["tunes"]
    table.add_row("all", "", f"{stats['rejected']['total']:,}", f"{stats['duplicates']:,}",
                  *(f"{total[key]:,}" for key in ("total", *SPLITS)), style="bold")
    console.print(table)
    if encoding == CorpusEncoding.abc:
        counts("rhythm (R:)", "rhythm", stats["rhythm"])
        counts("meter (M:)", "meter", stats["meter"])
        counts("mode (K:)", "mode", stats["mode"])
    tokens, vocabulary = stats["tokens"], stats["vocabulary"]
    console.print(
        f"tokens: {tokens['total']:,} (train {tokens['train']:,}, valid {tokens['valid']:,}, "
        f"test {tokens['test']:,}); {tokens['mean_per_tune']} a tune on average, "
        f"{tokens['max_per_tune']:,} at most", highlight=False)
    console.print(f"vocabulary: {vocabulary['size']:,} tokens ({vocabulary['train']:,} in train; "
                  f"{len(vocabulary['unseen_in_train'])} only in valid/test)", highlight=False)
    rejected = stats["rejected"]
    if rejected["total"]:
        counts(f"rejected: {rejected['total']:,} tunes", "reason", rejected["by_reason"])
        for example in rejected["examples"]:
            console.print(f"  {example}", highlight=False, markup=False)


@corpus_app.command("export")
def corpus_export(
    split: Annotated[Split, typer.Option(help="Which split to write.")] = Split.train,
    out: Annotated[Path | None, typer.Option(
        help="File to write (atomically); default: standard output.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
    source: SourceOption = None,
    encoding: EncodingOption = CorpusEncoding.abc,
    seed: SeedOption = 0,
    cache_dir: CacheDirOption = None,
) -> None:
    """Write one split in folk-rnn's format: one tune a line, tokens separated by spaces."""
    from folkrnn.corpus import export_split

    try:
        from folkrnn.files import EXISTS, exists

        if out is not None and exists(out) and not force:  # before the build, not after it; a dangling link too
            raise OptionError(EXISTS, file=str(out))
        corpus = _corpus(source, encoding, seed, cache_dir)
        result = export_split(corpus, split.value, out, force=force)
    except FolkError as error:
        fail(error)
    if out is None:
        sys.stdout.write(result)
    else:
        typer.echo(f"wrote {len(corpus.split(split.value)):,} tunes to {result}", err=True)


# --- train | info -----------------------------------------------------------------------------

class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Optimizer(str, Enum):
    adamw = "adamw"
    rmsprop = "rmsprop"


class Schedule(str, Enum):
    cosine = "cosine"
    plateau = "plateau"
    constant = "constant"


def _command_line(context: typer.Context) -> str:
    """The running command as typed (the options given on the command line), for a model's card."""
    import shlex

    parts = ["folkrnn", context.info_name or ""]
    for parameter in context.command.params:
        source = context.get_parameter_source(parameter.name)
        if getattr(source, "name", None) != "COMMANDLINE":
            continue
        value = context.params[parameter.name]
        if not parameter.opts[0].startswith("-"):  # an argument
            parts.append(str(value))
        elif isinstance(value, bool):
            parts.append(parameter.opts[0] if value else (parameter.secondary_opts or parameter.opts)[0])
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                parts += [parameter.opts[0], str(item.value if isinstance(item, Enum) else item)]
    return shlex.join(parts)


def _need_torch() -> None:
    """Say in one line how to install torch when it is missing (the musician's install has none)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        from importlib import metadata

        try:  # the pin of the train extra, as the README gives it
            pins = [line.split(";")[0].strip() for line in metadata.requires("folkrnn") or []
                    if line.startswith("torch") and "train" in line]
        except metadata.PackageNotFoundError:
            pins = []
        pinned = f" ({pins[0]})" if pins else ""
        fail(OptionError(f"training needs torch: pip install 'folkrnn[train]'{pinned}"))


@app.command("train")
def train_command(
    context: typer.Context,
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", "--source", "-s", help="A music21 collection, 'default', or an ABC file, folk-rnn "
        "data file or folder (with --encoding midi, MIDI folders too; ABC is played). Repeat to "
        "combine. Without it: the default corpus.")] = None,
    encoding: EncodingOption = CorpusEncoding.abc,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training split (at most).")] = 30,
    hidden_size: Annotated[int | None, typer.Option(min=1, help="LSTM units per layer [512].")] = None,
    layers: Annotated[int | None, typer.Option(min=1, help="LSTM layers [3].")] = None,
    embedding_size: Annotated[int | None, typer.Option(min=1, help="Token embedding width [256].")] = None,
    dropout: Annotated[float | None, typer.Option(min=0.0, max=0.99, help="Dropout after each layer [0.5].")] = None,
    positions: Annotated[bool | None, typer.Option(
        "--positions/--no-positions", help="The model also reads where each token stands. ABC: beat, "
        "bar of the part, part, and what was written there one, two and four bars and a part ago "
        "(folkrnn.abc.phrases). MIDI: the phase of the beat, the beat of the bar, and the controls "
        "(tempo, meter, key, density) that open each performance (folkrnn.pulse) [on].")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Tunes per step, over all processes.")] = 64,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")] = 3e-3,
    optimizer: Annotated[Optimizer, typer.Option(help="Optimiser.")] = Optimizer.adamw,
    schedule: Annotated[Schedule, typer.Option(help="Learning rate: warm-up, then cosine decay over "
                                               "--epochs, halving on a plateau, or constant.")] = Schedule.cosine,
    bptt: Annotated[int, typer.Option(min=1, help="Truncated backprop-through-time chunk, in tokens.")] = 256,
    patience: Annotated[int, typer.Option(min=0, help="Stop after this many evaluations without a better "
                                          "validation loss (0: never).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for weights, data order and dropout.")] = 0,
    device: Annotated[Device, typer.Option(help="Where to train.")] = Device.auto,
    out: Annotated[Path, typer.Option(help="Model directory to write.")] = Path("outputs/model"),
    resume: Annotated[bool, typer.Option(help="Continue the run in --out exactly where it stopped, with its "
                                         "corpus, encoding, model and training settings (read from --out). "
                                         "Options given again must agree with the run, except --epochs, "
                                         "--patience, --eval-interval and --device; --max-minutes and "
                                         "--max-batches apply to this command only.")] = False,
    force: Annotated[bool, typer.Option(help="Start afresh even if --out holds a model.")] = False,
    max_minutes: Annotated[float, typer.Option(min=0.0, help="Stop cleanly after this long (0: no limit).")] = 0.0,
    max_batches: Annotated[int, typer.Option(min=0, help="Stop cleanly after this many batches (0: no limit).")] = 0,
    eval_interval: Annotated[int, typer.Option(min=0, help="Batches between evaluations (0: each epoch).")] = 0,
    transpose: Annotated[int, typer.Option(min=0, max=12, help="MIDI: random transposition, +- semitones.")] = 0,
    stretch: Annotated[float, typer.Option(min=0.0, max=0.49, help="MIDI: random time-stretch, 1 +- this.")] = 0.0,
    fp16: Annotated[bool, typer.Option(help="Store the weights as float16 (half the size).")] = False,
) -> None:
    """Train the LSTM on a corpus; leaves OUT/model.safetensors and OUT/config.json.

    Runs on the CPU, a GPU, or many processes: torchrun --nproc-per-node N -m folkrnn train ...
    """
    import os

    _need_torch()
    try:
        from folkrnn.train import TrainConfig, train

        settings = dict(
            epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer.value, schedule=schedule.value,
            bptt=bptt,
            patience=patience, seed=seed, device=device.value, out=str(out), resume=resume, force=force,
            max_minutes=max_minutes, max_batches=max_batches, eval_interval=eval_interval,
            augment_transpose=transpose,
            augment_stretch=stretch, weights_dtype="float16" if fp16 else "float32",
            command=_command_line(context))
        if positions is None and resume:
            features = None  # as the run being resumed
        else:
            from folkrnn.schemes import default_scheme

            features = default_scheme(encoding.value) if positions is not False else ""
        model = {"hidden_size": hidden_size, "layers": layers, "embedding_size": embedding_size,
                 "dropout": dropout, "features": features}
        if resume:  # the run in --out says all that the command line leaves unsaid (folkrnn.train.resume_plan)
            from folkrnn.train import resume_plan

            options = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "optimizer": "optimizer",
                       "schedule": "schedule", "bptt": "bptt", "patience": "patience", "seed": "seed",
                       "device": "device", "max_minutes": "max_minutes", "max_batches": "max_batches",
                       "eval_interval": "eval_interval", "transpose": "augment_transpose",
                       "stretch": "augment_stretch", "fp16": "weights_dtype"}
            given = {key: settings[key] for option, key in options.items()
                     if getattr(context.get_parameter_source(option), "name", None) == "COMMANDLINE"}
            encoding_given = getattr(context.get_parameter_source("encoding"), "name", None) == "COMMANDLINE"
            settings, model, tunes = resume_plan(
                out, train_given={**given, "command": settings["command"]}, model_given=model,
                sources=corpus or None, encoding=encoding.value if encoding_given else None)
        else:
            from folkrnn.corpus import build_corpus

            tunes = build_corpus(sources=corpus or None, encoding=encoding.value)
        config = TrainConfig(**settings)
        result = train(tunes, config, model)
    except FolkError as error:
        fail(error)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the checkpoints are written whole, or not at all
        kept = (out / "config.json").is_file()
        typer.echo(f"interrupted: the last checkpoint is kept in {out} (--resume goes on from it)" if kept
                   else "interrupted before the first checkpoint: nothing was kept", err=True)
        raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for all
        return
    losses = ", ".join(f"{name} {value:.3f}" for name, value in (
        ("train", result.train_loss), ("valid", result.best_valid_loss), ("test", result.test_loss))
        if value is not None)
    ending = "all epochs run" if result.stopped == "epochs" else f"stopped by {result.stopped}"
    typer.echo(f"{result.epochs:g} epochs, {result.steps:,} steps ({ending}) in "
               f"{result.wall_s / 60:.1f} min at {result.tokens_per_s:,.0f} tokens/s, padding "
               f"{result.padding:.1%}; loss (nats/token): {losses or 'n/a'}")
    typer.echo(f"model: {result.out}")


@app.command("info")
def info_command(
    model: Annotated[Path, typer.Argument(help="A model directory (or its model.safetensors).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """Print a model's card: network, encoding, vocabulary and training record."""
    import json

    from folkrnn.checkpoint import format_card, model_card

    try:
        card = model_card(model)
    except FolkError as error:
        fail(error)
    if json_output:
        typer.echo(json.dumps(card, indent=1, ensure_ascii=False))
    else:
        typer.echo(format_card(card))


# --- encode | render | transcribe (MIDI) -------------------------------------------------------

def _echo_warnings(caught) -> None:
    for warning in caught:
        typer.echo(f"warning: {' '.join(str(warning.message).split())}", err=True)


@app.command("encode")
def encode_command(
    midi_file: Annotated[Path, typer.Argument(help="A MIDI file (.mid).")],
    names: Annotated[bool, typer.Option("--names", help="Print event names (NOTE_ON_60 ...) "
                                        "instead of ids.")] = False,
    program: Annotated[int | None, typer.Option(
        min=0, max=127, help="Read only the instruments with this General MIDI program (0-127).")] = None,
    instrument: Annotated[str | None, typer.Option(
        help="Read only the tracks whose name contains this.")] = None,
) -> None:
    """Encode a MIDI file as Performance RNN events (388 ids) and print them on one line.

    Drum tracks are skipped and the other instruments merged; the sustain pedal extends notes.
    """
    import warnings

    from folkrnn.events import event_names
    from folkrnn.midi import encode_midi

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ids = encode_midi(midi_file, program=program, instrument=instrument)
        _echo_warnings(caught)
    except FolkError as error:
        fail(error)
    typer.echo(" ".join(event_names(ids)) if names else " ".join(map(str, ids)))


@app.command("render")
def render_command(
    abc_file: Annotated[Path, typer.Argument(help="An ABC file: a tune or a tunebook.")],
    format: Annotated[str, typer.Option(
        "--format", "-f", help=f"{_FORMAT_HELP}.")] = "mid",
    straight: Annotated[bool, typer.Option(
        help="MIDI: exact timing and one velocity, for practice.")] = False,
    tempo: Annotated[float | None, typer.Option(
        min=20, max=400, help="MIDI, WAV and MusicXML: beats per minute (dotted quarters in 6/8, 9/8, 12/8; "
        "quarters otherwise). Default: Q:, else the rhythm's usual tempo.")] = None,
    instrument: Annotated[str, typer.Option(help=f"MIDI, WAV and MusicXML: {_INSTRUMENT_NAMES}.")] = "fiddle",
    seed: Annotated[int, typer.Option(help="MIDI: seed of the humanisation.")] = 0,
    soundfont: SoundfontOption = None,
    paper: PaperOption = "a4",
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("outputs"),
    force: Annotated[bool, typer.Option(help="Overwrite files that exist.")] = False,
) -> None:
    """Render every tune of an ABC file as OUT/<title>.mid (or .abc), never overwriting without --force.

    Each tune gets a file named after its title (with its X: number when titles repeat). A tune
    that cannot be read is reported and skipped; the exit code is then non-zero.
    """
    from folkrnn.abc import parse, read_text, split_tunebook
    from folkrnn.render import check_paper, render, renderer_for, slug

    suffix = "." + format.lower().lstrip(".")
    try:
        renderer_for(suffix)
    except FolkError as error:
        fail(error)
    options = {"straight": straight, "tempo": tempo, "instrument": instrument, "seed": seed} \
        if suffix in (".mid", ".midi", ".wav") else {}
    if suffix == ".wav":
        options["soundfont"] = str(soundfont) if soundfont is not None else None
    if suffix in (".musicxml", ".xml"):  # the part's instrument and the metronome mark
        options = {"instrument": instrument, "tempo": tempo}
    if suffix == ".pdf":
        try:
            options["paper"] = check_paper(paper)
        except FolkError as error:
            fail(error)
    failed = 0
    try:
        texts = split_tunebook(read_text(abc_file), str(abc_file))
        if not texts:
            raise OptionError("no tunes (no X: lines) in this file", file=str(abc_file))
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(OptionError(f"cannot create the folder: {error.strerror or error}", file=str(out)))
    except FolkError as error:
        fail(error)
    used: set[str] = set()  # the names this run gives: each once, whatever --force says
    for position, text in enumerate(texts, 1):
        try:
            try:
                tune = parse(text.text)
            except FolkError as error:
                raise error.located(file=str(abc_file), tune=text.label, line_offset=text.line - 1) from None
            name = _unique_name(slug(tune.title, fallback=f"tune-{tune.number or position}"),
                                slug(str(tune.number or ""), fallback=str(position)), position, used)
            text_option = {"abc": text.text} if suffix in (".svg", ".pdf") else {}  # slurs, decorations, chords
            written = render(tune, out / f"{name}{suffix}", force=force, **options, **text_option)
        except FolkError as error:
            if len(texts) == 1:
                fail(error)
            typer.echo(f"error: {error}", err=True)
            failed += 1
            continue
        typer.echo(str(written))
    if failed:
        raise typer.Exit(1)


def _unique_name(name: str, number: str, position: int, used: set[str]) -> str:
    """A file name no other tune of this run has: the title's, then with its X: number, then with
    its place in the file (concatenated tunes often share a title and X:1)."""
    for candidate in (name, f"{name}-{number}", f"{name}-{position}"):
        if candidate not in used:
            break
    else:
        extra = 2
        while f"{name}-{position}-{extra}" in used:
            extra += 1
        candidate = f"{name}-{position}-{extra}"
    used.add(candidate)
    return candidate


@app.command("transcribe")
def transcribe_command(
    midi_file: Annotated[Path, typer.Argument(help="A MIDI file (.mid).")],
    meter: Annotated[str | None, typer.Option(help="Meter (6/8, 4/4, ...); default: the "
                                                 "file's, else estimated.")] = None,
    tempo: Annotated[float | None, typer.Option(
        min=10, max=1000, help="Quarter notes per minute; default: the file's, else estimated.")] = None,
    key: Annotated[str | None, typer.Option(help="Key (G, Ador, Emin, ...); default: the "
                                               "file's, else estimated.")] = None,
    divisions: Annotated[int, typer.Option(help="Grid steps per quarter note (4: sixteenths).")] = 4,
    out: Annotated[str | None, typer.Option(help="ABC file to write (atomically), or a folder (one that "
                                               "exists, or ending in /) to write MIDI_FILE's name .abc "
                                               "into; default: standard output.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Transcribe a MIDI performance into ABC: quantised, barred and spelled in a key."""
    import warnings

    from folkrnn.abc.writer import tune_to_abc
    from folkrnn.files import EXISTS, exists
    from folkrnn.render import render
    from folkrnn.transcribe import transcribe_midi

    try:
        target = _transcription_path(out, midi_file) if out is not None else None
        if target is not None and not force and exists(target):  # before the work, not after it
            raise OptionError(EXISTS, file=str(target))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tune = transcribe_midi(midi_file, meter=meter, qpm=tempo, key=key, divisions=divisions)
        _echo_warnings(caught)
        if target is not None:
            written = render(tune, target, force=force)
    except FolkError as error:
        fail(error)
    if out is None:
        sys.stdout.write(tune_to_abc(tune))
    else:
        typer.echo(str(written), err=True)


def _transcription_path(out: str, midi_file: Path) -> Path:
    """Where transcribe writes: into the folder ``out`` names (one that exists, or a path ending in
    a slash, made if needed) as the MIDI file's name with .abc; else the file ``out`` (.abc added
    when it has no suffix)."""
    import os

    from folkrnn.files import prepare_folder

    path = Path(out)
    if out.endswith(("/", os.sep)) or path.is_dir():
        return prepare_folder(path) / f"{Path(midi_file).stem}.abc"
    return path if path.suffix else path.with_suffix(".abc")


@app.command("tokenize")
def tokenize_command(
    path: Annotated[str, typer.Argument(help=(
        "An ABC file or tunebook, '-' for standard input, or a file of the default corpus "
        "as music21:COLLECTION/FILE (e.g. music21:oneills1850/0001-0050.abc)."))],
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="Stop after this many tunes.")] = None,
    raw: Annotated[bool, typer.Option(
        "--raw", help="Keep the tune as written: no transposition, L: rescaling or stripping.")] = False,
    text: Annotated[bool, typer.Option(
        "--text", help="Print the normalised ABC text instead of the tokens.")] = False,
) -> None:
    """Print the model tokens of each tune, one tune a line (folk-rnn's format).

    A tune that cannot be read is reported on standard error and skipped; the exit code is 1 when
    any tune was skipped, 2 when the file cannot be read at all.
    """
    from folkrnn.abc import Normalisation, detokenize, read_text, split_tunebook, tokenize

    settings = Normalisation(transpose=False, unit_length=False, strip=False,
                             canonical_bars=False, map_rhythm=False, detect_mode=False) if raw \
        else Normalisation()
    if path.startswith("music21:"):
        from folkrnn.corpus import music21_corpus_dir

        path = str(music21_corpus_dir() / path.split(":", 1)[1])
    try:
        source = read_text(path)  # "-": standard input, with the same size limit
    except FolkError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    tunes = split_tunebook(source, path)[:limit]
    skipped = 0
    for tune in tunes:
        try:
            tokens = tokenize(tune.text, settings)
        except FolkError as error:
            skipped += 1
            error.located(file=str(path), tune=tune.label, line_offset=tune.line - 1)
            typer.echo(f"error: {error} (skipped)", err=True)
            continue
        typer.echo(detokenize(tokens) if text else " ".join(tokens))
    if not tunes:
        typer.echo(f"error: {path}: no tunes found", err=True)
        raise typer.Exit(2)
    if skipped:
        raise typer.Exit(1)


# --- validate | evaluate -----------------------------------------------------------------------


@app.command("validate")
def validate_command(
    files: Annotated[list[Path], typer.Argument(help="ABC files (tunes or tunebooks).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per tune "
                                          "(valid, errors, warnings, structure, range, nearest).")] = False,
    instrument: Annotated[str | None, typer.Option(
        help=f"Flag notes this instrument cannot play: {_INSTRUMENT_NAMES}.")] = None,
    against: Annotated[list[str] | None, typer.Option(
        help="Compare with every tune of this corpus (ABC file or folder, or a music21 "
        "collection); repeat to combine. Default: the default corpus's training split.")] = None,
    strict: Annotated[bool, typer.Option(
        help="A probable copy (>= 0.85 similar) and a tune with no closing bar line are errors.")] = False,
    novelty: Annotated[bool, typer.Option(help="Look for the nearest corpus tune.")] = True,
) -> None:
    """Check that each tune plays as written: syntax, header, bar lengths, repeats and endings,
    structure, range, and novelty against a corpus.

    Exit code 0 when every tune is valid, 1 when any is invalid, 2 when a file cannot be read.
    """
    import json

    from folkrnn.corpus import default_novelty_index
    from folkrnn.validate import ValidateOptions, instrument_range, validate_file

    try:
        if instrument:
            instrument_range(instrument)
        options = ValidateOptions(instrument=instrument, strict=strict, require_closing_bar=strict)
        index = None
        if novelty:
            from rich.console import Console

            with Console(stderr=True).status("indexing the corpus for the novelty check..."):
                index = default_novelty_index(tuple(against) if against else None)
    except FolkError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    reports, unreadable = [], 0
    for path in files:
        try:
            found = validate_file(path, options=options, novelty=index)
        except FolkError as error:
            typer.echo(f"error: {error}", err=True)
            unreadable += 1
            continue
        reports.extend(found)
        if not as_json:
            for report in found:
                typer.echo(report.format())
    if as_json:
        typer.echo(json.dumps([report.to_dict() for report in reports], indent=1, ensure_ascii=False))
    elif reports or not unreadable:  # a file that cannot be read: its error is the one line
        invalid = sum(not report.valid for report in reports)
        typer.echo(f"{len(reports)} tunes: {len(reports) - invalid} valid, {invalid} invalid", err=True)
    if unreadable:
        raise typer.Exit(2)
    if any(not report.valid for report in reports):
        raise typer.Exit(1)


@app.command("evaluate")
def evaluate_command(
    model: Annotated[Path | None, typer.Option(
        help="Model directory, ABC or MIDI-event (default: the shipped ABC model).")] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Tunes (or performances) to generate.")] = 500,
    out: Annotated[Path, typer.Option(help="Folder for report.md, report.json and the plots.")] = Path(
        "outputs/evaluate"),
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (> 0).")] = 1.0,
    titles: Annotated[int, typer.Option(min=0, help="Titles per kind (Jig, Reel, Hornpipe, Waltz, "
                                        "Polka) for the title-conditioning test.")] = 50,
    seconds: Annotated[float, typer.Option(min=1.0, max=600.0, help="MIDI-event models: the length of each "
                                           "performance, and of the real ones it is compared with.")] = 30.0,
    corpus: Annotated[list[str] | None, typer.Option(
        help="Evaluate on this corpus (default: the one the model was trained on).")] = None,
    force: Annotated[bool, typer.Option(help="Replace a report already in --out.")] = False,
) -> None:
    """Measure a model: test loss next to a 5-gram baseline, generated tunes next to real ones
    (validity, novelty, pitch, rhythm and structure), and title conditioning."""
    from rich.console import Console

    from folkrnn.evaluate import EvaluateConfig, evaluate

    console = Console(stderr=True)
    try:
        config = EvaluateConfig(n=n, seed=seed, temperature=temperature, titles_per_type=titles, seconds=seconds)
        if not force:  # before the corpus is built: refused in a moment, not after the work
            from folkrnn.evaluate import REPORT_FILES
            from folkrnn.files import EXISTS, exists

            for name in REPORT_FILES:
                if exists(out / name):
                    raise OptionError(EXISTS, file=str(out / name))
        tunes = None
        if corpus:
            from folkrnn.corpus import build_corpus

            tunes = build_corpus(corpus)
        with console.status("evaluating...") as status:
            result = evaluate(model, out, config, corpus=tunes,
                              progress=lambda message: status.update(f"{message}..."), force=force)
    except FolkError as error:
        fail(error)
    unit = "event" if result.get("encoding") == "midi" else "token"
    typer.echo(f"test loss {result['test_loss_nats']:.4f} nats/{unit} (perplexity "
               f"{result['test_perplexity']:.2f}); {result['ngram_order']}-gram "
               f"{result['ngram_test_loss_nats']:.4f}")
    if result.get("encoding") == "midi":
        table = result["performance"]["generated"]
        typer.echo(f"{result['generated']} performances of {config.seconds:g} s: "
                   f"{table.get('transcribed_share') or 0:.1%} transcribe to clean ABC")
        typer.echo(f"report: {out / 'report.md'}")
        return
    novelty = f"{result['novelty_rate']:.1%}" if result["novelty_rate"] is not None else "n/a"
    accuracy = (f"{result['title_conditioning_accuracy']:.1%}"
                if result["title_conditioning_accuracy"] is not None else "n/a")
    typer.echo(f"{result['generated']} tunes: {result['validity_rate']:.1%} valid, {novelty} novel; "
               f"title conditioning {accuracy}")
    typer.echo(f"report: {out / 'report.md'}")


# --- compose | generate ------------------------------------------------------------------------

# The choices, from folkrnn.tables: the R: values the tokenizer knows, and the modes by name.
Rhythm = Enum("Rhythm", [(name, name) for name in RHYTHMS + ("any", "dance")], type=str)
Mode = Enum("Mode", [(mode.name, mode.name) for mode in MODES.values()], type=str)


class Strategy(str, Enum):
    sample = "sample"
    greedy = "greedy"
    beam = "beam"


TitleOption = Annotated[str | None, typer.Option(
    help="The title; the model reads it, so it shapes the tune (one ending in Jig, Reel, Hornpipe, "
    "... also sets R: when --rhythm does not). Without it the model writes one.")]
RhythmOption = Annotated[Rhythm | None, typer.Option(
    help="Fix R:, and M: to the dance's meters unless --meter is given (reel: "
    f"{' or '.join(DANCES['reel'].meters)}; jig: {' or '.join(DANCES['jig'].meters)}). Default: a "
    f"dance of the model's choice {DANCE_SHARE:.0%} of the time, else a tune of no dance (R:other, an "
    "air); dance: always a dance; any: any rhythm.")]
MeterOption = Annotated[str | None, typer.Option(help="Fix M:, e.g. 6/8 (default: the model's choice).")]
FormOption = Annotated[str | None, typer.Option(
    help=f"The form: {', '.join(FORMS)} (a letter twice: a repeated part). Default: the usual form "
    f"of the tune's dance (reels, jigs, hornpipes: {DANCES['reel'].form} in {DANCES['reel'].part_bars}-bar "
    "parts); free: the model's own, a part closing by its 16th bar where a bar line can close it.")]
PartBarsOption = Annotated[int | None, typer.Option(
    min=1, max=64, help="Bars in each part (default: the dance's; 8 for repeated parts, 16 for others).")]
ModeOption = Annotated[Mode | None, typer.Option(help="Fix the mode of K: (default: the model's choice).")]
KeyOption = Annotated[str | None, typer.Option(
    help="Write the tune in this key (D, F#, Bb; Ador sets the mode too). Default: the usual "
    f"tonic of its mode and rhythm (reels in {DANCES['reel'].tonics['maj']}, jigs in "
    f"{DANCES['jig'].tonics['maj']}, {MODES['min'].tonic} minor, {MODES['dor'].tonic} dorian, "
    f"{MODES['mix'].tonic} mixolydian).")]
PrimeOption = Annotated[str | None, typer.Option(
    help="The tune begins with this: ABC (header fields allowed: \"K:D\\nd2fd AdFA\") or the "
    "model's tokens (\"M:6/8 K:Cmaj |: G\"). The model continues it.")]
ComposeSeedOption = Annotated[int | None, typer.Option(
    help="Random seed: the same seed, the same tune. Default: a random one, printed.")]
TemperatureOption = Annotated[float, typer.Option(help="Divides the logits: < 1 safer, > 1 wilder (> 0).")]
TopKOption = Annotated[int, typer.Option(help="Sample among the k most probable tokens (0: all).")]
ComposeTopPOption = Annotated[float | None, typer.Option(
    help="Then among the fewest tokens reaching this probability, in (0, 1]. Default: the value "
    "calibrated on real tunes (folkrnn.sample.SampleConfig).")]
StrategyOption = Annotated[Strategy, typer.Option(help="sample (temperature, top-k, top-p), greedy or beam search.")]
BeamWidthOption = Annotated[int, typer.Option(help="Beam search: hypotheses kept.")]
ConstrainOption = Annotated[bool, typer.Option(
    help="Keep every bar full and repeats balanced, and end with a closing bar.")]
CompassOption = Annotated[int, typer.Option(
    min=0, max=60, help="Semitones from a tune's lowest note to its highest, at most: 24 (two octaves) "
    "is a whistle's or flute's compass (0: any).")]
LookbackOption = Annotated[float | None, typer.Option(
    min=0.0, max=10.0, help="Added to the logit of each token (never a bar line or ending) that two "
    "bars, a phrase (four bars) or a part ago offers at this point of the bar, where dance tunes "
    "repeat: bars and phrases come back more often (0: the model alone). Default: the value "
    "calibrated on real tunes (folkrnn.sample.SampleConfig).")]
FirstRestOption = Annotated[float | None, typer.Option(
    min=0.0, max=10.0, help="Taken from the logit of a rest until the tune has one: fewer tunes rest "
    "at all, as few real dance tunes do, and those that do rest as they like (0: the model alone). "
    "Default: the value calibrated on real tunes (folkrnn.sample.SampleConfig).")]
ModelOption = Annotated[Path | None, typer.Option(
    help="A model directory (default: the model shipped with folkrnn).")]
InstrumentOption = Annotated[str, typer.Option(help=f"MIDI, WAV and MusicXML instrument: {_INSTRUMENT_NAMES}.")]
TempoOption = Annotated[float | None, typer.Option(
    min=20, max=400, help="Beats per minute (dotted quarters in 6/8, 9/8, 12/8; quarters otherwise), "
    "written as Q: and played in the MIDI and WAV. Default: the dance's usual tempo.")]
ForceOption = Annotated[bool, typer.Option(help="Overwrite files that exist.")]


def _compose_options(**values):
    from folkrnn.compose import ComposeOptions

    for name in ("rhythm", "mode", "strategy"):
        if isinstance(values.get(name), Enum):
            values[name] = values[name].value
    values["model"] = str(values["model"]) if values.get("model") is not None else None
    values["soundfont"] = str(values["soundfont"]) if values.get("soundfont") is not None else None
    for name in ("lookback", "first_rest", "top_p"):
        if values.get(name) is None:
            values.pop(name, None)  # the sampler's calibrated default
    values["out"] = str(values["out"])
    return ComposeOptions(**values)


def _report_retries(failures) -> None:
    for seed, reason in failures:
        typer.echo(f"note: seed {seed} made no whole tune ({reason}); the next seed was tried", err=True)


@app.command("compose")
def compose_command(
    title: TitleOption = None,
    rhythm: RhythmOption = None,
    meter: MeterOption = None,
    mode: ModeOption = None,
    key: KeyOption = None,
    form: FormOption = None,
    part_bars: PartBarsOption = None,
    prime: PrimeOption = None,
    seed: ComposeSeedOption = None,
    temperature: TemperatureOption = 1.0,
    top_k: TopKOption = 0,
    top_p: ComposeTopPOption = None,
    strategy: StrategyOption = Strategy.sample,
    beam_width: BeamWidthOption = 4,
    constrain: ConstrainOption = True,
    compass: CompassOption = 24,
    lookback: LookbackOption = None,
    first_rest: FirstRestOption = None,
    model: ModelOption = None,
    instrument: InstrumentOption = "fiddle",
    tempo: TempoOption = None,
    soundfont: SoundfontOption = None,
    format: Annotated[str, typer.Option(
        "--format", "-f", help=f"Files to write, comma-separated: {_FORMAT_HELP}.")] = ",".join(COMPOSE_FORMATS),
    paper: PaperOption = "a4",
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("outputs"),
    force: ForceOption = False,
) -> None:
    """Compose a new tune: OUT/<title>.abc, .mid, .svg, .musicxml (and .wav); the ABC is printed too.

    Every tune is valid by construction (full bars, balanced repeats, a closing bar) and carries,
    under its N: line, the command that makes it again (a % comment line).
    """
    from folkrnn.compose import compose

    try:
        options = _compose_options(
            title=title, rhythm=rhythm, meter=meter, mode=mode, key=key, form=form, part_bars=part_bars,
            prime=prime, seed=seed,
            temperature=temperature, top_k=top_k, top_p=top_p, strategy=strategy,
            beam_width=beam_width, constrain=constrain, compass=compass, lookback=lookback,
            first_rest=first_rest, model=model, instrument=instrument, tempo=tempo, soundfont=soundfont,
            formats=format, paper=paper, out=out, force=force)
        random_seed = seed is None
        composed = compose(options)
    except FolkError as error:
        fail(error)
    if random_seed:
        typer.echo(f"seed: {options.seed} (random; --seed {options.seed} makes this tune again)", err=True)
    _report_retries(composed.failures)
    for warning in composed.warnings:
        typer.echo(warning if warning.startswith("note:") else f"warning: {warning}", err=True)
    sys.stdout.write(composed.abc)
    typer.echo("wrote " + ", ".join(str(path) for path in composed.files), err=True)


def _end_of_batch(what: str, made: int, missing: int, error, interrupted: bool, where) -> None:
    """What a batch command says at its end when not all went well: the pieces it could not
    make, then a failure (one line, non-zero exit) or an interruption (exit 130), each with how
    many finished pieces were kept and where."""
    if missing:
        typer.echo(f"{missing} {what} could not be made (see summary.json)", err=True)
    if error is not None:
        typer.echo(f"kept {made} finished {what} in {where}", err=True)
        fail(error)
    if interrupted:
        typer.echo(f"interrupted: kept {made} finished {what} in {where}", err=True)
        raise typer.Exit(130)


@app.command("generate")
def generate_command(
    count: Annotated[int, typer.Option("-n", help="How many tunes.")] = 10,
    title: TitleOption = None,
    rhythm: RhythmOption = None,
    meter: MeterOption = None,
    mode: ModeOption = None,
    key: KeyOption = None,
    form: FormOption = None,
    part_bars: PartBarsOption = None,
    prime: PrimeOption = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the first tune; tune i gets seed + i (recorded in summary.json and in its N: "
        "and command lines). Default: random, printed.")] = None,
    temperature: TemperatureOption = 1.0,
    top_k: TopKOption = 0,
    top_p: ComposeTopPOption = None,
    strategy: StrategyOption = Strategy.sample,
    beam_width: BeamWidthOption = 4,
    constrain: ConstrainOption = True,
    compass: CompassOption = 24,
    lookback: LookbackOption = None,
    first_rest: FirstRestOption = None,
    model: ModelOption = None,
    instrument: InstrumentOption = "fiddle",
    tempo: TempoOption = None,
    soundfont: SoundfontOption = None,
    format: Annotated[str, typer.Option(
        "--format", "-f", help="abc: the tunebook (always written); pdf: the tunebook as sheet music, "
        f"tunes.pdf; {', '.join(name for name in FORMATS if name not in ('abc', 'pdf'))}: one file per "
        "tune.")] = ",".join(GENERATE_FORMATS),
    paper: PaperOption = "a4",
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("outputs/generated"),
    force: ForceOption = False,
    workers: Annotated[int | None, typer.Option(
        help="Processes that share the sampling (default: one per core, up to 16); the tunes are "
        "the same whatever the number.")] = None,
) -> None:
    """Generate many tunes at once: OUT/tunes.abc (X: 1..N), a MIDI file per tune and summary.json.

    The tunes go through the model together, in batches. Ctrl-C keeps the tunes finished so far.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from folkrnn.compose import generate
    from folkrnn.limits import check_count

    try:
        options = _compose_options(
            title=title, rhythm=rhythm, meter=meter, mode=mode, key=key, form=form, part_bars=part_bars,
            prime=prime, seed=seed,
            temperature=temperature, top_k=top_k, top_p=top_p, strategy=strategy,
            beam_width=beam_width, constrain=constrain, compass=compass, lookback=lookback,
            first_rest=first_rest, model=model, instrument=instrument, tempo=tempo, soundfont=soundfont,
            formats=format, paper=paper, out=out, force=force)
        random_seed = seed is None
        check_count(count, "tunes")  # before the progress bar: the error is the one line
        console = Console(stderr=True)
        with Progress(TextColumn("composing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("tunes", total=max(count, 1) if isinstance(count, int) else 1)
            result = generate(options, count, progress=lambda done, total: bar.update(task, completed=done),
                              workers=workers, keep=False)  # memory does not grow with -n
    except FolkError as error:
        fail(error)
    if random_seed:
        typer.echo(f"seed: {options.seed} (random)", err=True)
    if strategy == Strategy.beam and count > 1:
        typer.echo("note: beam search draws nothing at random: with the same options, every "
                   "tune it makes is the same", err=True)
    made = result.written
    where = result.tunebook_path or out
    _end_of_batch("tunes", made, len(result.rejected), result.error, result.interrupted, where)
    rate = made / result.seconds if result.seconds else 0
    typer.echo(f"wrote {made} tunes to {where} ({result.seconds:.1f} s, {rate:.1f} tunes/s); "
               f"summary: {result.summary_path}", err=True)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every network; mind who can reach it).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: ModelOption = None,
    db: Annotated[str | None, typer.Option(
        help="The tunebook: a SQLite file, or a postgresql:// URL shared by several servers. "
        "Default: tunebook.sqlite in this folder.")] = None,
    workers: Annotated[int, typer.Option(help="Server processes on this machine (each loads the model).")] = 1,
) -> None:
    """The web composer in your browser: compose, read, play, download and keep tunes (docs/serve.md)."""
    from folkrnn.serve import serve

    try:
        serve(host, port, model=model, db=db, workers=workers, announce=lambda line: typer.echo(line, err=True))
    except FolkError as error:
        fail(error)


class PerformStrategy(str, Enum):
    sample = "sample"
    greedy = "greedy"


@app.command("perform")
def perform_command(
    model: Annotated[Path | None, typer.Option(
        help="A MIDI-event model directory (default: the one shipped with folkrnn).")] = None,
    count: Annotated[int, typer.Option("-n", help="How many performances.")] = 1,
    seconds: Annotated[float, typer.Option(help="Length of each performance, at most (0: no limit).")] = 30.0,
    max_events: Annotated[int, typer.Option(help="Events per performance, at most.")] = 5000,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the first piece; piece i gets seed + i (recorded in summary.json). Default: "
        "random, printed.")] = None,
    temperature: TemperatureOption = 1.0,
    top_k: TopKOption = 0,
    top_p: Annotated[float | None, typer.Option(
        help="Then among the fewest events reaching this probability, in (0, 1]. Default: the value "
        "calibrated on real tunes (folkrnn.perform.PerformConfig).")] = None,
    strategy: Annotated[PerformStrategy, typer.Option(help="sample (temperature, top-k, top-p) or greedy.")]
    = PerformStrategy.sample,
    guards: Annotated[bool, typer.Option(
        help="The event grammar: playable by the instrument (one note at a time on a monophonic one, "
        "every note ended within --max-note, pitches in its range, a velocity before the first note). "
        "--no-guards: the raw model.")] = True,
    max_note: Annotated[float | None, typer.Option(
        help="Seconds a note may sound at most (default: the longest note of the model's corpus, else 2).")] = None,
    max_voices: Annotated[int, typer.Option(
        help="Notes sounding at once at most, on a polyphonic instrument (a monophonic one plays 1).")] = 4,
    rhythm: Annotated[str | None, typer.Option(
        help="Play this dance: its meters and tempo (reel, jig, hornpipe, ...). Default: the model's choice.")]
    = None,
    tempo: Annotated[float | None, typer.Option(
        help="Beats per minute (a dotted quarter in 6/8, 9/8, 12/8, else a quarter). Default: the dance's, "
        "or the model's choice.")] = None,
    meter: Annotated[str | None, typer.Option(help="The meter, e.g. 6/8 (default: the dance's, or the model's "
                                               "choice).")] = None,
    key: Annotated[str | None, typer.Option(help="The key signature's key: D, Bb, Ador (default: the model's "
                                             "choice).")] = None,
    density: Annotated[float | None, typer.Option(help="Notes per second (default: the model's choice).")] = None,
    prime: Annotated[Path | None, typer.Option(help="A MIDI file whose events start every piece.")] = None,
    instrument: Annotated[str, typer.Option(
        help=f"Who plays: the General MIDI instrument of the files, and the range and voices the event "
        f"grammar keeps to: {_INSTRUMENT_NAMES}.")] = "fiddle",
    out: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("outputs/performances"),
    force: ForceOption = False,
) -> None:
    """Sample performances from a MIDI-event model: OUT/perf-0001.mid ... and summary.json.

    The model is Performance RNN's kind (folkrnn train --encoding midi); the pieces go through it
    together, and the same seed and options make the same piece.
    """
    from folkrnn.perform import Controls, PerformConfig, perform

    try:
        calibrated = {} if top_p is None else {"top_p": top_p}  # else PerformConfig's calibrated default
        options = PerformConfig(strategy=strategy.value, temperature=temperature, top_k=top_k, seconds=seconds,
                                max_events=max_events, guards=guards, max_note=max_note, max_voices=max_voices,
                                **calibrated)
        controls = Controls(rhythm=rhythm, tempo=tempo, meter=meter, key=key, density=density)
        result = perform(model, count, options=options, seed=seed, prime=prime, instrument=instrument,
                         out=out, force=force, controls=controls)
    except FolkError as error:
        fail(error)
    if seed is None and result.pieces:
        typer.echo(f"seed: {result.pieces[0].requested_seed} (random)", err=True)
    missing = sum(not piece.ok for piece in result.pieces)
    _end_of_batch("performances", len(result.files), missing, result.error, result.interrupted, out)
    notes = sum(len(piece.notes) for piece in result.pieces)
    length = sum(piece.seconds for piece in result.pieces)
    typer.echo(f"wrote {len(result.files)} performances to {out} ({notes:,} notes, {length:.1f} s of "
               f"music, in {result.seconds:.1f} s); summary: {result.summary_path}", err=True)


def main() -> None:
    """Console-script entry point."""
    from folkrnn.processes import stop_on_sigterm

    stop_on_sigterm()  # kill, timeout: keep what Ctrl-C keeps (finished tunes, a checkpoint)
    try:
        app()
    except FolkError as error:  # raised outside a command body (e.g. in a callback)
        typer.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
