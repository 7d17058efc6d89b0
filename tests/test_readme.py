"""Every command in README.md runs as written.

The commands are read from the README's ```bash blocks each time the test runs (never from a list
kept here), so a README edit is tested as it is. Each block runs in a fresh temporary folder, its
commands in order (a later command may read what an earlier one wrote: train, then info or resume
or perform with that model), after the files the commands read but nothing in the block writes
have been made in that folder (see :func:`provide_inputs`).

- ``folkrnn ...`` and ``python -m folkrnn ...`` run as ``python -m folkrnn ...`` in this
  interpreter, with the shortenings of :data:`SHORTENINGS` and nothing else changed; a non-zero
  exit is a failure.
- ``pip install ...`` is not run; the extras it names must exist in pyproject.toml, and a pinned
  package (``torch==2.13.0``) must be pinned the same way there.
- ``torchrun ...`` and any command with ``--device cuda`` need hardware this test does not assume,
  and ``folkrnn serve`` never ends by itself: their options are only parsed (torchrun's by its own
  parser, folkrnn's by the command's own click parser, which checks every option name, value type
  and choice).
- Anything else (``python -m pytest``, other programs) is not folkrnn's to check, and is listed
  in the test output as skipped.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

# The one table of shortenings: (folkrnn command, when, what is done, why). Nothing else in a
# README command is changed. Options a command already gives are never overridden by an addition.
SHORTENINGS = (
    ("train", "always", "add --max-batches 2 (a resumed run: --max-batches 2 counts the run's batches, "
     "so it trains one more)", "a run takes minutes to hours; two batches run every step of it"),
    ("train", "no --corpus/--source/--resume", "add --corpus my_tunes/ (three tunes, made here)",
     "the default corpus's final evaluation (all its splits, 3 x 512) alone takes minutes on a CPU"),
    ("generate", "-n/--n above 5", "-n 5", "500 tunes take minutes"),
    ("evaluate", "--n/-n above 5", "--n 5", "500 generated tunes take minutes"),
    ("perform", "-n above 2", "-n 2", "each performance is sampled event by event"),
    ("perform", "--seconds above 5", "--seconds 5", "30 s of events from a barely trained model"),
    ("any", "--device cuda, or torchrun", "options parsed only, not run", "needs GPUs"),
    ("serve", "always", "options parsed only, not run", "a server runs until it is stopped"),
)
NOT_RUN = ("serve",)  # folkrnn commands that never end by themselves
MAX_BATCHES = "2"
TINY_CORPUS = "my_tunes/"
LIMITS = {"generate": (("-n", "--n"), 5), "evaluate": (("--n", "-n"), 5), "perform": (("-n",), 2)}
SECONDS = {"perform": 5}

# Options whose value is a file or folder the command reads (as opposed to --out, which it writes).
INPUT_OPTIONS = ("--corpus", "--source", "-s", "--against", "--prime", "--model")

TUNES = """X:1
T:Windy Gap Test Reel
R:reel
M:4/4
L:1/8
K:D
|:DFAF dFAF|GBdB gBdB|AFAF EFGE|FDEF D4:|
|:fdfa gfed|cAeA cAeA|fdfa gfed|cAGE D4:|

X:2
T:The Hillside Test Jig
R:jig
M:6/8
L:1/8
K:G
|:GBd gdB|cec BdB|AFD DFA|GBA G3:|
|:gfg ege|dBd gdB|cAF DFA|BGG G3:|
"""

MY_TUNES = """X:1
T:The Copper Kettle
R:hornpipe
M:4/4
L:1/8
K:A
|:EF|A2c2 e2c2|d2f2 e2c2|B2d2 c2A2|B2G2 E2EF|
A2c2 e2c2|d2f2 e2c2|B2d2 c2B2|A6:|

X:2
T:Morning Frost
R:waltz
M:3/4
L:1/8
K:F
|:F2A2c2|B2d2f2|e2c2A2|G4F2|
F2A2c2|B2d2f2|e2g2e2|f6:|

X:3
T:The Slate Quarry
R:polka
M:2/4
L:1/8
K:Em
|:EG BG|FA dA|EG Be|dB A2|
EG BG|FA dA|Bd ed|e2 e2:|
"""


# --- reading the README ------------------------------------------------------------------------


@dataclass
class Command:
    line: str  # as the README writes it
    words: list[str]  # after quoting and comments are resolved
    block: int  # the index of its ```bash block


@dataclass
class Block:
    index: int
    commands: list[Command] = field(default_factory=list)
    shows: str | None = None  # the text of a plain ``` block right after it (what it prints)


def readme_blocks(text: str) -> list[Block]:
    """The README's ```bash blocks, each with its commands (backslash continuations joined,
    comments dropped, ``&&`` and ``;`` lists split), and the plain code block that follows one
    directly, if any."""
    blocks = []
    fences = list(re.finditer(r"^```([\w-]*)\n(.*?)^```\s*$", text, flags=re.M | re.S))
    for number, fence in enumerate(fences):
        if fence.group(1) != "bash":
            continue
        block = Block(len(blocks))
        body = fence.group(2).replace("\\\n", " ")
        for line in body.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            words: list[str] = []
            for word in [*lexer, "&&"]:
                if word in ("&&", ";", "||"):
                    if words:
                        block.commands.append(Command(line.strip(), words, block.index))
                    words = []
                else:
                    words.append(word)
        following = fences[number + 1] if number + 1 < len(fences) else None
        if following is not None and following.group(1) == "" and not text[fence.end():following.start()].strip(
                ).count("\n\n"):
            block.shows = following.group(2)
        blocks.append(block)
    return blocks


def folkrnn_args(command: Command) -> list[str] | None:
    """The arguments after ``folkrnn`` of a folkrnn command, else None."""
    words = command.words
    if words[:1] == ["folkrnn"]:
        return words[1:]
    if words[:3] in (["python", "-m", "folkrnn"], ["python3", "-m", "folkrnn"]):
        return words[3:]
    return None


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


# --- what a command reads and writes -----------------------------------------------------------


def _click_command(args: list[str]):
    """The click command a folkrnn argument list names, and the arguments left for it."""
    import typer.main

    from folkrnn.cli import app

    command = typer.main.get_command(app)
    name = "folkrnn"
    while hasattr(command, "commands") and args and args[0] in command.commands:
        name, command, args = args[0], command.commands[args[0]], args[1:]
    return name, command, args


def _flags(command) -> set[str]:
    """The option strings of a click command that take no value."""
    out = set()
    for parameter in command.params:
        if getattr(parameter, "is_flag", False) or getattr(parameter, "count", False):
            out.update(parameter.opts)
            out.update(parameter.secondary_opts)
    return out


def split_options(args: list[str]) -> tuple[str, list[str], list[tuple[str, str | None]]]:
    """(subcommand, positional arguments, [(option, value or None)]) of a folkrnn argument list."""
    name, command, rest = _click_command(args)
    flags = _flags(command) | {"--help"}
    positional, options = [], []
    index = 0
    while index < len(rest):
        word = rest[index]
        if word.startswith("-") and len(word) > 1 and not re.fullmatch(r"-\d.*", word):
            if "=" in word:
                options.append(tuple(word.split("=", 1)))
            elif word in flags:
                options.append((word, None))
            else:
                options.append((word, rest[index + 1] if index + 1 < len(rest) else None))
                index += 1
        else:
            positional.append(word)
        index += 1
    subcommand = " ".join(args[:len(args) - len(rest)])
    return subcommand, positional, options


def _is_collection(value: str) -> bool:
    from folkrnn.corpus import COLLECTIONS

    return value == "default" or value.startswith("music21:") or value in {c.name for c in COLLECTIONS}


def _write_midi(path: Path) -> None:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    violin = pretty_midi.Instrument(program=40)
    for number, pitch in enumerate([62, 66, 69, 74, 73, 71, 69, 66, 67, 69, 71, 69, 66, 64, 62, 62]):
        violin.notes.append(pretty_midi.Note(velocity=70 + number % 3 * 10, pitch=pitch,
                                             start=number * 0.25, end=number * 0.25 + 0.23))
    midi.instruments.append(violin)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))


def provide_inputs(block: Block, folder: Path, *, all_reads: bool = False) -> list[str]:
    """Make, in ``folder``, every file a block's commands read that no earlier command of the block
    writes: ``*.abc`` files get two tunes, ``*.mid`` files a short fiddle line, a folder given to
    --corpus/--source/--against gets three other tunes, and a model (``--model DIR``, ``info DIR``)
    a copy of the shipped model of its encoding (MIDI when its name says midi). With ``all_reads``,
    also what an earlier command would write (for parsing without running). Returns what it made."""
    from folkrnn.checkpoint import shipped_model

    made: list[str] = []
    written: set[str] = set()
    for command in block.commands:
        args = folkrnn_args(command)
        if args is None:
            continue
        subcommand, positional, options = split_options(args)
        reads = [(None, value) for value in positional]
        reads += [(option, value) for option, value in options if option in INPUT_OPTIONS and value]
        if subcommand == "train" and not any(o in ("--corpus", "--source", "-s", "--resume") for o, _ in options):
            reads.append(("--corpus", TINY_CORPUS))  # the shortening adds it
        if subcommand == "info":
            reads = [("--model", value) for _, value in reads]
        for option, value in reads:
            key = value.rstrip("/")
            path = folder / key
            if key in written or any(key.startswith(f"{folder_written}/") for folder_written in written) \
                    or path.exists() or _is_collection(value) or option == "--prime" and not re.search(
                    r"\.(mid|midi|abc)$", value):
                continue
            if option == "--model":
                shutil.copytree(shipped_model("midi" if "midi" in key else "abc"), path)
            elif re.search(r"\.(mid|midi)$", key, flags=re.I):
                _write_midi(path)
            elif key.endswith(".abc"):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(TUNES, encoding="utf-8")
            elif option in ("--corpus", "--source", "-s", "--against"):
                path.mkdir(parents=True)
                (path / "tunes.abc").write_text(MY_TUNES, encoding="utf-8")
            else:
                continue  # not a file (a subcommand's word, a title)
            made.append(value)
        if not all_reads:
            written.update(value.rstrip("/") for option, value in options if option == "--out" and value)
    return made


# --- shortening and option checks --------------------------------------------------------------


def shortened(args: list[str]) -> list[str]:
    """A folkrnn argument list with the shortenings of :data:`SHORTENINGS` applied."""
    subcommand, _, options = split_options(args)
    given = {option for option, _ in options}
    args = list(args)
    if subcommand == "train":
        if "--max-batches" not in given:
            args += ["--max-batches", MAX_BATCHES]
        if not given & {"--corpus", "--source", "-s", "--resume"}:
            args += ["--corpus", TINY_CORPUS]
    for names, limit in [LIMITS.get(subcommand, ((), 0)), (("--seconds",), SECONDS.get(subcommand, 0))]:
        for index, word in enumerate(args[:-1]):
            if word in names and float(args[index + 1]) > limit:
                args[index + 1] = str(limit)
    return args


def parse_only(command: Command) -> bool:
    """Whether a command is only parsed: it needs GPUs, or never ends by itself."""
    args = folkrnn_args(command) or []
    if args[:1] and args[0] in NOT_RUN:
        return True
    words = command.words
    return words[:1] == ["torchrun"] or any(
        word == "--device" and value == "cuda" for word, value in zip(words, words[1:])) or "--device=cuda" in words


def check_options(args: list[str]) -> None:
    """Parse a folkrnn argument list with the command's own parser (names, types, choices), as
    running it would, without running it. Raises AssertionError with click's message."""
    import click

    name, command, rest = _click_command(args)
    if hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        raise AssertionError(f"folkrnn {shlex.join(args)}: {name} has no command {rest[0]!r}")
    try:
        command.make_context(name, list(rest))
    except click.exceptions.Exit:
        pass
    except click.ClickException as error:
        raise AssertionError(f"folkrnn {shlex.join(args)}: {error.format_message()}") from None


def check_torchrun(words: list[str]) -> list[str]:
    """Parse a torchrun line with torchrun's own parser; returns the folkrnn arguments it runs."""
    run = pytest.importorskip("torch.distributed.run")
    try:
        parsed = run.get_args_parser().parse_args(words[1:])
    except SystemExit:
        raise AssertionError(f"torchrun does not accept {shlex.join(words)}") from None
    assert parsed.module and parsed.training_script == "folkrnn", \
        f"{shlex.join(words)}: torchrun must run -m folkrnn"
    return list(parsed.training_script_args)


def check_pip(words: list[str]) -> None:
    """A pip install line: the extras it names exist, and its pins are pyproject.toml's."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    requirements = [r for group in [project.get("dependencies", []), *extras.values()] for r in group]
    names = {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower() for r in requirements} | {project["name"]}
    assert words[1:2] == ["install"], f"{shlex.join(words)}: only pip install is expected"
    for word in words[2:]:
        if word.startswith("-"):
            continue
        match = re.fullmatch(r"(\.|[\w./-]+)\[([\w,\s-]+)\]", word)
        if match:
            assert match.group(1) == ".", f"{word}: the README installs this checkout"
            for extra in match.group(2).split(","):
                assert extra.strip() in extras, f"{shlex.join(words)}: pyproject.toml has no extra {extra!r}"
        elif "==" in word:
            assert word in requirements, f"{shlex.join(words)}: pyproject.toml does not pin {word}"
        else:
            assert word == "." or word.lower() in names, \
                f"{shlex.join(words)}: installs {word!r}, neither this project nor one of its dependencies"


def run_folkrnn(args: list[str], folder: Path, line: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "folkrnn", *args], cwd=folder, capture_output=True,
                            text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, (
        f"README command failed (exit {result.returncode}): {line}\n  ran: folkrnn {shlex.join(args)}\n"
        f"  stderr: {result.stderr[-3000:]}\n  stdout: {result.stdout[-1500:]}")
    return result


# --- the tests ---------------------------------------------------------------------------------


def test_the_readme_has_commands_to_check():
    commands = [c for block in BLOCKS for c in block.commands]
    assert len(BLOCKS) >= 3 and sum(folkrnn_args(c) is not None for c in commands) >= 10
    train = [c for c in commands if (folkrnn_args(c) or [""])[0] == "train"]
    assert train and all("--max-batches" in shortened(folkrnn_args(c)) for c in train)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.index}:{' '.join(b.commands[0].words[:3])}"
                         if b.commands else str(b.index))
def test_every_readme_command_parses(block, tmp_path):
    """Fast: every option of every folkrnn command exists and takes the value it is given."""
    provide_inputs(block, tmp_path, all_reads=True)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for command in block.commands:
            if command.words[0] == "torchrun":
                check_options(check_torchrun(command.words))
            elif command.words[0] == "pip":
                check_pip(command.words)
            elif folkrnn_args(command) is not None:
                check_options(folkrnn_args(command))
    finally:
        os.chdir(cwd)


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.index}:{' '.join(b.commands[0].words[:3])}"
                         if b.commands else str(b.index))
def test_every_readme_command_runs(block, tmp_path, capsys):
    """Each ```bash block in a fresh folder, its commands in order (see the module docstring)."""
    made = provide_inputs(block, tmp_path)
    skipped = []
    for command in block.commands:
        args = folkrnn_args(command)
        if command.words[0] == "pip":
            check_pip(command.words)
        elif command.words[0] == "torchrun":
            check_options(check_torchrun(command.words))
        elif args is None:
            skipped.append(command.line)
        elif parse_only(command):
            check_options(args)
        else:
            result = run_folkrnn(shortened(args), tmp_path, command.line)
            if block.shows is not None and block.shows.startswith("X:") and len(block.commands) <= 2:
                # a block followed by the output it prints: the tune must be the one shown
                assert result.stdout.strip() == block.shows.strip(), (
                    f"README shows another output for {command.line}:\n{result.stdout}")
    with capsys.disabled():
        if made or skipped:
            print(f"\n[README block {block.index}] made: {made or 'nothing'}; not folkrnn's, skipped: {skipped}")
