"""Hostile cases for the reliability suite (tests/test_hostile.py) and benchmarks/hostile.py.

Every case runs the real CLI (``python -m folkrnn ...``) in a subprocess, in a folder of its own
whose name carries a unique marker, and is judged the same way:

- no ``Traceback`` on either stream;
- an error exits non-zero with one line on stderr (``warning:``, ``note:``, ``seed:`` and
  ``kept ...`` lines are the code's own policy and pass; so does click's usage box, exit code 2);
- no process left behind: nothing whose working folder or command line names the case's folder
  is alive after a short grace;
- no file lost or half-written: every file the case put there is byte for byte the same (unless
  it passed ``--force``), no temporary (``.NAME.*.part``, ``*.tmp``) is left, and each file written
  is whole (JSON parses, MIDI chunks add up, ABC is UTF-8, safetensors' header fits).

Most generated inputs (mutated ABC, broken MIDI, bad models) go through the library in one
subprocess (:func:`run_library`), a few through the CLI, and the ABC files through one
``validate`` run that reads them all; bad option values go through the CLI one by one.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from conftest import KESH  # the tune the tests share (tests/ is on the path: pytest's, or the benchmark's)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / "data" / "abc"
SHIPPED = REPO / "folkrnn" / "models"
MARK = "hostile"
GUARD_AS = 6 * 2**30  # every case runs under this address-space ceiling: a runaway fails, the machine lives
INFO = ("warning:", "note:", "seed:", "kept ")



# --- what a case is -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Fifo:
    pass


@dataclass
class Case:
    """One run of the CLI. ``argv`` follows ``python -m folkrnn``; ``{dir}`` is the case's folder."""

    name: str
    argv: list
    files: dict = field(default_factory=dict)  # path in the folder -> bytes | Symlink | Fifo | None (a folder)
    expect: str = "any"  # "error", "ok" or "any"
    timeout: float = 60.0
    changes: bool = False  # the files given may change (--force)
    env: dict = field(default_factory=dict)
    limit_as: int | None = None  # RLIMIT_AS in bytes (default GUARD_AS)
    check: object = None  # check(folder, outcome) -> list of problems
    slow: bool = False


@dataclass
class Outcome:
    name: str
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    hang: bool = False
    traceback: bool = False
    lines_ok: bool = True
    orphans: list = field(default_factory=list)
    lost: list = field(default_factory=list)  # files given that changed or vanished
    partial: list = field(default_factory=list)  # temporaries left, or files written that are not whole
    problems: list = field(default_factory=list)  # the case's own check, or an unexpected exit status

    @property
    def kind(self) -> str:
        """"hang", "traceback", "clean error" or "accepted" (what the command did)."""
        if self.hang:
            return "hang"
        if self.traceback:
            return "traceback"
        return "accepted" if self.returncode == 0 else "clean error" if self.lines_ok else "unclean error"

    @property
    def ok(self) -> bool:
        return (self.kind in ("accepted", "clean error") and not self.orphans and not self.lost
                and not self.partial and not self.problems)

    def describe(self) -> str:
        parts = [f"{self.name}: {self.kind} (exit {self.returncode}, {self.seconds:.1f} s)"]
        for label in ("orphans", "lost", "partial", "problems"):
            if getattr(self, label):
                parts.append(f"{label} {getattr(self, label)}")
        if self.kind not in ("accepted", "clean error") or self.problems:
            parts.append("stderr: " + " | ".join(self.stderr.strip().splitlines()[-6:]))
        return "; ".join(parts)


# --- running one --------------------------------------------------------------------------------


def case_folder(root: Path, name: str) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in name)[:40]
    folder = Path(root) / f"{MARK}-{slug}-{uuid.uuid4().hex[:10]}"
    folder.mkdir(parents=True)
    return folder


def lay_out(folder: Path, files: dict) -> None:
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, Symlink):
            os.symlink(content.target, path)
        elif isinstance(content, Fifo):
            os.mkfifo(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder``: its bytes, a link's target, or a marker for folders and FIFOs."""
    found = {}
    for base, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(base) / name
            relative = str(path.relative_to(folder))
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("dir", None)
            elif path.is_file():
                found[relative] = ("file", path.read_bytes())
            else:
                found[relative] = ("other", None)
    return found


def _limits(limit_as: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    return apply


def environment(folder: Path, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPATH": str(REPO)})
    env.pop("FOLKRNN_CACHE", None)
    for key, value in (extra or {}).items():
        env[key] = value.replace("{dir}", str(folder))
    return env


def expand(argv: list, folder: Path) -> list:
    return [arg.replace("{dir}", str(folder)) if isinstance(arg, str) else arg for arg in argv]


@dataclass
class Running:
    case: Case
    folder: Path
    before: dict
    process: subprocess.Popen
    started: float


def launch(case: Case, root: Path, python: str = sys.executable) -> Running:
    """Lay out the case's files and start the CLI on them (a session of its own)."""
    folder = case_folder(root, case.name)
    lay_out(folder, case.files)
    before = snapshot(folder)
    process = subprocess.Popen(
        [python, "-m", "folkrnn", *expand(case.argv, folder)], cwd=folder, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env=environment(folder, case.env), preexec_fn=_limits(case.limit_as or GUARD_AS))
    return Running(case, folder, before, process, time.perf_counter())


def settle(running: Running, timeout: float | None = None, grace: float = 3.0) -> Outcome:
    """Wait for the run (killing its session after ``timeout``), then judge it."""
    case, process = running.case, running.process
    outcome = Outcome(case.name)
    try:
        out, err = process.communicate(timeout=timeout if timeout is not None else case.timeout)
    except subprocess.TimeoutExpired:
        outcome.hang = True
        kill_session(process.pid)
        out, err = process.communicate()
    outcome.seconds = time.perf_counter() - running.started
    outcome.returncode = process.returncode
    outcome.stdout = out.decode("utf-8", "replace")
    outcome.stderr = err.decode("utf-8", "replace")
    outcome.traceback = "Traceback" in outcome.stdout or "Traceback" in outcome.stderr
    outcome.lines_ok = stderr_is_one_line(outcome.stderr, outcome.returncode, outcome.stdout)
    outcome.orphans = wait_for_orphans(running.folder, grace)
    if outcome.orphans:
        kill_pids(outcome.orphans)
    judge_files(running.folder, running.before, case.changes, outcome)
    if not outcome.hang and not outcome.traceback:
        if case.expect == "error" and outcome.returncode == 0:
            outcome.problems.append("accepted, but an error was expected")
        if case.expect == "ok" and outcome.returncode != 0:
            outcome.problems.append("refused, but success was expected")
    if case.check is not None and not outcome.hang:
        outcome.problems += case.check(running.folder, outcome)
    return outcome


def run_case(case: Case, root: Path) -> Outcome:
    return settle(launch(case, root))


def stderr_is_one_line(stderr: str, returncode: int | None, stdout: str = "") -> bool:
    """An error says one line (lines of the code's own policy aside: click's usage box, one
    ``error:`` line per tune a tunebook command could not read, and validate's verdict on stdout
    with no error at all)."""
    if returncode == 0:
        return True
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(INFO)]
    lines = [line for line in lines if not _summary_line(line)]
    if returncode == 2 and any(line.startswith("Usage:") for line in lines) and "Error" in stderr:
        return True
    if len(lines) > 1 and all(line.startswith("error:") and "tune " in line for line in lines):
        return True
    return len(lines) == 1 or (not lines and bool(stdout.strip()))


def _summary_line(line: str) -> bool:
    """validate's closing count ("3 tunes: 2 valid, 1 invalid") and a batch's "N ... could not be made"."""
    words = line.split()
    return bool(words) and words[0].isdigit() and ("valid," in words or "could" in words)


# --- processes ----------------------------------------------------------------------------------


def processes_of(folder: Path) -> list[int]:
    """Live processes whose working folder is in ``folder`` or whose command line names it."""
    marker = str(folder)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                if handle.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    continue  # a zombie is dead: its parent has not reaped it yet
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().decode("utf-8", "replace")
        except (OSError, IndexError):
            continue
        if cwd == marker or cwd.startswith(marker + "/") or marker in cmdline:
            found.append(int(entry))
    return found


def wait_for_orphans(folder: Path, grace: float) -> list[int]:
    deadline = time.monotonic() + grace
    while True:
        found = processes_of(folder)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# --- files --------------------------------------------------------------------------------------


def is_temporary(name: str) -> bool:
    return name.endswith((".tmp", ".part")) or (name.startswith(".") and ".part" in name)


def judge_files(folder: Path, before: dict, changes: bool, outcome: Outcome) -> None:
    after = snapshot(folder)
    if not changes:
        for relative, entry in before.items():
            if after.get(relative) != entry:
                outcome.lost.append(relative)
    for relative, (kind, content) in after.items():
        name = Path(relative).name
        if is_temporary(name):
            outcome.partial.append(relative)
        elif kind == "file" and before.get(relative) != (kind, content):
            problem = whole(name, content)
            if problem:
                outcome.partial.append(f"{relative}: {problem}")


def whole(name: str, data: bytes) -> str:
    """What is wrong with a file written (empty: nothing)."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == "json":
        try:
            json.loads(data)
        except ValueError:
            return "not whole JSON"
    elif suffix in ("mid", "midi"):
        return midi_problem(data)
    elif suffix in ("abc", "md", "svg", "musicxml"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8"
        if not data:
            return "empty"
    elif suffix == "safetensors":
        if len(data) < 8 or 8 + struct.unpack("<Q", data[:8])[0] > len(data):
            return "safetensors header runs past the end"
    return ""


def midi_problem(data: bytes) -> str:
    """Whether a MIDI file's chunks add up (MThd, then each chunk's length within the file)."""
    if data[:4] != b"MThd" or len(data) < 14:
        return "no MIDI header"
    tracks = struct.unpack(">H", data[10:12])[0]
    position, found = 8 + struct.unpack(">I", data[4:8])[0], 0
    while position < len(data):
        if position + 8 > len(data):
            return "a chunk is cut short"
        length = struct.unpack(">I", data[position + 4:position + 8])[0]
        position += 8 + length
        found += data[position - 8 - length:position - 4 - length] == b"MTrk"
    if position != len(data):
        return "the last chunk is cut short"
    if found != tracks:
        return f"{found} tracks, the header says {tracks}"
    return ""


# --- building inputs ----------------------------------------------------------------------------


def vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_file(notes=None, *, division: int = 480, tempo: int | None = 500_000, extra: bytes = b"",
              fmt: int = 0) -> bytes:
    """A type-0 MIDI file: ``notes`` as (start tick, length in ticks, pitch, velocity); ``tempo``
    None: no tempo and no time signature in it."""
    if notes is None:
        notes = [(i * 240, 220, 60 + (i * 7) % 24, 80) for i in range(48)]
    events = []
    for start, length, pitch, velocity in notes:
        events.append((start, 1, bytes([0x90, pitch, velocity])))
        events.append((start + length, 0, bytes([0x80, pitch, 0])))
    events.sort(key=lambda event: (event[0], event[1]))
    body = extra if tempo is None else (
        b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big") + b"\x00\xff\x58\x04\x06\x03\x18\x08" + extra)
    now = 0
    for tick, _, message in events:
        body += vlq(tick - now) + message
        now = tick
    body += b"\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, fmt, 1, division) + b"MTrk" + struct.pack(">I", len(body)) + body)


def abc_bases() -> list[str]:
    texts = [KESH]
    for path in sorted(DATA.glob("*.abc")):
        texts.append(path.read_text(encoding="utf-8"))
    return texts


def tunes_abc(count: int, title: str = "Reel", number: int = 1) -> str:
    body = "|:abcd efga|bagf edcB|abcd efga|bagf e4:|\n"
    return "\n".join(f"X:{number}\nT:{title}\nR:reel\nM:4/4\nL:1/8\nK:D\n{body}" for _ in range(count))


def varied_tunes(count: int, seed: int = 0, first: int = 1) -> str:
    """``count`` different reels (a corpus keeps them all: no two bodies alike)."""
    rng = random.Random(seed)
    notes = "DEFGABcdef"
    tunes = []
    for number in range(first, first + count):
        bars = "|".join("".join(rng.choice(notes) for _ in range(8)) for _ in range(8))
        tunes.append(f"X:{number}\nT:Tune {number}\nR:reel\nM:4/4\nL:1/8\nK:D\n|:{bars}:|\n")
    return "\n".join(tunes)


def model_files(config_edit=None, weights: bytes | Symlink | None = None, encoding: str = "abc") -> dict:
    """A model folder: the shipped model's config (edited) and weights (or the bytes given)."""
    config = json.loads((SHIPPED / encoding / "config.json").read_text(encoding="utf-8"))
    if config_edit is not None:
        config = config_edit(config)
    text = config if isinstance(config, (bytes, str)) else json.dumps(config)
    shipped = Symlink(str(SHIPPED / encoding / "model.safetensors"))
    return {"m/config.json": text, "m/model.safetensors": weights if weights is not None else shipped}


def _edit(path: tuple, value):
    def edit(config):
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return config

    return edit


# --- the cases named in issue 11, and a few more ----------------------------------------------------


def _count_files(pattern: str, expected: int):
    def check(folder: Path, outcome: Outcome) -> list[str]:
        found = sorted(folder.glob(pattern))
        return [] if len(found) == expected else [f"{len(found)} files match {pattern}, not {expected}"]

    return check


def _exists(*relatives: str):
    def check(folder: Path, outcome: Outcome) -> list[str]:
        return [f"{relative} was not written" for relative in relatives if not (folder / relative).exists()]

    return check


def _absent(*relatives: str):
    def check(folder: Path, outcome: Outcome) -> list[str]:
        return [f"{relative} was written" for relative in relatives if os.path.lexists(folder / relative)]

    return check


def _no_control_characters(folder: Path, outcome: Outcome) -> list[str]:
    return [f"{path.name} holds control characters" for path in folder.rglob("*.abc")
            if any(ch in path.read_bytes() for ch in (b"\x07", b"\x1b"))]


def _warned(folder: Path, outcome: Outcome) -> list[str]:
    return [] if "warning" in outcome.stderr else ["no warning on stderr"]


def _no_machine_paths(folder: Path, outcome: Outcome) -> list[str]:
    return [f"{path.name} names site-packages or the checkout" for path in folder.rglob("*.json")
            if str(REPO).encode() in path.read_bytes() or b"site-packages" in path.read_bytes()]


def _jig_meters(folder: Path, outcome: Outcome) -> list[str]:
    summary = folder / "o" / "summary.json"
    if not summary.exists():
        return ["no summary.json"]
    meters = json.loads(summary.read_text())["distribution"]["meter"]
    return [] if set(meters) <= {"6/8"} else [f"jigs in {meters}"]


def _bytes_title(title: str) -> str:
    return os.fsdecode(title.encode("latin-1"))  # b"bad\xffutf" as an argument


def named_cases() -> list[Case]:
    """The hostile inputs named in issue 11 (and the files items' own), each judged as above."""
    three = tunes_abc(3)
    fake_torch = {"fake/torch/__init__.py": "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"}
    wide_bar = "X:1\nT:Wide\nM:4/4\nL:1/8\nK:C\n" + "C" * 10_000 + "|\n"
    many_notes = midi_file([(i * 60, 50, 60 + i % 12, 80) for i in range(100_000)])
    single_note = midi_file([(0, 400, 60, 80)], tempo=None)
    zero_then_real = midi_file([(0, 0, 60, 80), (0, 474, 60, 80), (960, 480, 62, 80)])
    return [
        # files lost or left behind (this helper's items)
        Case("render-same-title-force", ["render", "three.abc", "--format", "abc", "--out", "o", "--force"],
             {"three.abc": three}, expect="ok", check=_count_files("o/*.abc", 3)),
        Case("render-same-title", ["render", "three.abc", "--format", "abc", "--out", "o"],
             {"three.abc": three, "o": None}, expect="ok", check=_count_files("o/*.abc", 3)),
        Case("compose-dangling-symlink", ["compose", "--title", "Link Reel", "--seed", "1", "-f", "abc", "--out", "o"],
             {"o/link-reel.abc": Symlink("nowhere/at-all.abc")}, expect="error"),
        Case("render-dangling-symlink", ["render", "kesh.abc", "--format", "abc", "--out", "o"],
             {"kesh.abc": KESH, "o/the-kesh.abc": Symlink("gone.abc")}, expect="error"),
        Case("evaluate-existing-report", ["evaluate", "-n", "2", "--titles", "0", "--corpus", "tiny.abc",
                                          "--out", "o"],
             {"tiny.abc": tunes_abc(6), "o/report.md": "my notes\n", "o/report.json": "{}\n"},
             expect="error", timeout=90),
        Case("transcribe-out-folder", ["transcribe", "tune.mid", "--out", "o"],
             {"tune.mid": midi_file(), "o": None}, expect="ok", check=_exists("o/tune.abc")),
        Case("transcribe-out-slash", ["transcribe", "tune.mid", "--out", "new/"],
             {"tune.mid": midi_file()}, expect="ok", check=_exists("new/tune.abc")),
        Case("transcribe-out-file", ["transcribe", "tune.mid", "--out", "t.abc"],
             {"tune.mid": midi_file()}, expect="ok", check=_exists("t.abc")),
        Case("compose-exists", ["compose", "--title", "Old Reel", "--seed", "1", "-f", "abc", "--out", "o"],
             {"o/old-reel.abc": "mine\n"}, expect="error"),
        Case("generate-exists", ["generate", "-n", "2", "--seed", "1", "-f", "abc", "--out", "o"],
             {"o/summary.json": "{}\n"}, expect="error"),
        Case("generate-mid-exists", ["generate", "-n", "2", "--seed", "1", "-f", "abc,mid", "--out", "o",
                                     "--title", "Same Reel"],
             {"o/0001-same-reel.mid": midi_file()}, expect="error", slow=True),
        # memory and time (another helper's items: judged here all the same)
        Case("generate-billion", ["generate", "-n", "1000000000", "--out", "x"], expect="error", timeout=60,
             limit_as=3 * 2**30, slow=True),
        Case("validate-dev-zero", ["validate", "--no-novelty", "/dev/zero"], expect="error", timeout=30,
             limit_as=3 * 2**30, slow=True),
        Case("validate-fifo", ["validate", "--no-novelty", "pipe.abc"], {"pipe.abc": Fifo()}, expect="error",
             timeout=20, slow=True),
        Case("beam-width-huge", ["compose", "--strategy", "beam", "--beam-width", "10000", "--seed", "1",
                                 "-f", "abc", "--out", "o"], expect="error", timeout=30, slow=True),
        Case("render-svg-wide-bar", ["render", "wide.abc", "--format", "svg", "--out", "o"],
             {"wide.abc": wide_bar}, timeout=60, slow=True),
        Case("render-musicxml-wide-bar", ["render", "wide.abc", "--format", "musicxml", "--out", "o"],
             {"wide.abc": wide_bar}, timeout=60, slow=True),
        Case("validate-wide-bar", ["validate", "--no-novelty", "wide.abc"], {"wide.abc": wide_bar}, timeout=30),
        Case("transcribe-100k-notes", ["transcribe", "many.mid"], {"many.mid": many_notes}, timeout=60, slow=True),
        Case("model-million-layers", ["compose", "--model", "m", "--seed", "1", "-f", "abc", "--out", "o"],
             model_files(_edit(("model", "layers"), 1_000_000)), expect="error", timeout=60, slow=True),
        # tracebacks
        Case("compose-bad-utf8-title", ["compose", "--title", _bytes_title("bad\xffutf"), "--seed", "1",
                                        "--out", "o"]),
        Case("generate-bad-utf8-title", ["generate", "-n", "2", "--title", _bytes_title("bad\xffutf"), "--seed", "1",
                                         "--out", "o"], slow=True),
        Case("train-without-torch", ["train", "--corpus", "tiny.abc", "--epochs", "1", "--out", "m"],
             {"tiny.abc": tunes_abc(4), **fake_torch}, expect="error",
             env={"PYTHONPATH": "{dir}/fake" + os.pathsep + str(REPO), "FOLKRNN_CACHE": "{dir}/cache"}),
        # wrong or unclear results: the exit status is what is judged here
        Case("prime-not-a-token", ["compose", "--prime", "K:D\nd2fd NOTATOKEN", "--seed", "1", "-f", "abc",
                                   "--out", "o"], expect="error"),
        Case("control-characters-title", ["compose", "--title", "Bell\x07 Esc\x1b[31m Reel", "--seed", "1",
                                          "-f", "abc", "--out", "o"], check=_no_control_characters),
        Case("unit-length-zero", ["validate", "--no-novelty", "l0.abc"],
             {"l0.abc": "X:1\nT:L\nM:4/4\nL:1/0\nK:C\nabcd|\n"}, expect="error"),
        Case("length-divisor-zero", ["validate", "--no-novelty", "a0.abc"],
             {"a0.abc": "X:1\nT:A\nM:4/4\nL:1/8\nK:C\nA/0 abc|\n"}, expect="error"),
        Case("transcribe-one-note", ["transcribe", "one.mid"], {"one.mid": single_note}, expect="error"),
        Case("perform-prime-100k", ["perform", "--prime", "many.mid", "--seed", "1", "--out", "o"],
             {"many.mid": many_notes}, expect="error", timeout=60, slow=True),
        Case("vocabulary-twice", ["info", "m"], model_files(
            lambda c: {**c, "vocabulary": c["vocabulary"][:-1] + [c["vocabulary"][1]]}), expect="error"),
        Case("corpus-cache-dir-is-file", ["corpus", "build", "--source", "tiny.abc", "--cache-dir", "afile"],
             {"tiny.abc": tunes_abc(4), "afile": "not a folder\n"}, check=_warned),
        Case("midi-zero-length-note", ["encode", "z.mid"], {"z.mid": zero_then_real}),
        Case("perform-machine-paths", ["perform", "-n", "1", "--seconds", "3", "--seed", "1", "--out", "o"],
             check=_no_machine_paths, timeout=60, slow=True),
        Case("generate-jig-meters", ["generate", "-n", "20", "--rhythm", "jig", "--seed", "1", "-f", "abc",
                                     "--out", "o"], expect="ok", check=_jig_meters, timeout=90, slow=True),
    ]


# --- generated inputs ---------------------------------------------------------------------------


@dataclass
class Input:
    """A generated hostile file: ``kind`` "abc", "midi" or "model" (a folder of files)."""

    name: str
    kind: str
    files: dict  # relative path -> bytes | Symlink; the input is its first entry (a model: its folder "m")


_HUGE = ["99999999999999999999", "4294967296", "1" + "0" * 400, "-1", "0", "65536", "2147483648"]


def _mutate_abc(text: str, rng: random.Random) -> tuple[str, bytes]:
    data = text.encode("utf-8")
    how = rng.choice(["truncate", "bytes", "huge", "header", "repeats", "unicode", "nest", "lines", "long"])
    if how == "truncate":
        return how, data[:rng.randrange(0, max(1, len(data)))]
    if how == "bytes":
        out = bytearray(data)
        for _ in range(rng.randint(1, 12)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return how, bytes(out)
    if how == "huge":
        lines = text.splitlines()
        choice = rng.choice(["L:1/{}", "M:{}/4", "M:4/{}", "X:{}", "Q:1/4={}", "K:C\nA{}", "K:C\nA/{}",
                             "K:C\n({}abc", "K:C\n[{}abc]", "K:C\nA>{}B", "K:C\nz{}"])
        line = choice.format(rng.choice(_HUGE))
        position = rng.randrange(1, len(lines) + 1)
        return how, "\n".join(lines[:position] + line.split("\n") + lines[position:]).encode("utf-8")
    if how == "header":
        bad = rng.choice(["M:", "M:0/0", "M:-3/4", "M:a/b", "K:Hxyz", "K:", "L:", "L:1/0", "L:0/8", "L:1/3",
                          "Q:abc", "Q:=", "R:\x00", "T:", "M:C|/", "K:C clef=nonsense", "V:", "I:linebreak",
                          "%%MIDI program 999", "K:Gmaj^^", "M:4/4/4", "L:1/8/8"])
        lines = text.splitlines()
        lines.insert(rng.randrange(1, len(lines) + 1), bad)
        return how, "\n".join(lines).encode("utf-8")
    if how == "repeats":
        lines = text.splitlines()
        body = rng.choice([":|", "|:", "::", "[1", "[2", "|1", ":|2", "|]|]", ":::|", "|:|:|:", "[|", "|[3"])
        index = len(lines) - 1
        lines[index] = lines[index][:rng.randrange(len(lines[index]) + 1)] + body + lines[index]
        return how, "\n".join(lines).encode("utf-8")
    if how == "unicode":
        choice = rng.choice([b"\xff\xfe", b"\xfe\xff\x00X", b"\xef\xbb\xbf\xef\xbb\xbf", b"\xc3", b"\xed\xa0\x80",
                             "T:\u202e\u0301\u200d\ufeff\n".encode(), b"\x00", "T:\U0001f3bb\n".encode(),
                             b"\xc0\xaf", b"\r\r\n\r"])
        position = rng.randrange(len(data) + 1)
        return how, data[:position] + choice + data[position:]
    if how == "nest":
        choice = rng.choice(["(3" * 200, "{" * 200, "[" * 200, "(" * 200, "\\\n" * 200, "!trill!" * 500,
                             '"' * 201, "{" * 50 + "}" * 49])
        return how, text.replace("K:", f"K:C\n{choice}\nK:", 1).encode("utf-8") if "K:" in text else data
    if how == "lines":
        lines = text.splitlines()
        rng.shuffle(lines)
        return how, "\n".join(lines).encode("utf-8")
    return how, (text.split("K:")[0] + "K:C\n" + "abcd" * rng.choice([1_000, 5_000]) + "\n").encode("utf-8")


def _mutate_midi(rng: random.Random) -> tuple[str, bytes]:
    good = midi_file()
    how = rng.choice(["truncate", "magic", "header-length", "tracks", "division", "smpte", "track-length",
                      "delta", "running", "sysex", "flip", "unended", "pitch", "tempo", "empty", "format"])
    if how == "truncate":
        return how, good[:rng.randrange(0, len(good))]
    if how == "magic":
        return how, rng.choice([b"MThX", b"RIFF", b"\x00\x00\x00\x00", b"mthd"]) + good[4:]
    if how == "header-length":
        return how, good[:4] + struct.pack(">I", rng.choice([0, 5, 7, 2**31, 2**32 - 1])) + good[8:]
    if how == "tracks":
        return how, good[:10] + struct.pack(">H", rng.choice([0, 2, 65535])) + good[12:]
    if how == "division":
        return how, good[:12] + struct.pack(">H", rng.choice([0, 1, 0x7FFF])) + good[14:]
    if how == "smpte":
        return how, good[:12] + bytes([rng.choice([0xE2, 0xE7, 0xE8, 0x80]), rng.randrange(256)]) + good[14:]
    if how == "track-length":
        return how, good[:18] + struct.pack(">I", rng.choice([0, 3, 2**31, 2**32 - 1])) + good[22:]
    if how == "delta":
        notes = [(0, 200, 60, 80), (rng.choice([0x0FFFFFFF, 10**7, 2**27 - 1]), 200, 62, 80)]
        return how, midi_file(notes)
    if how == "running":
        body = b"\x00\x3c\x40\x60\x3c\x00\x00\xff\x2f\x00"  # data bytes with no status before them
        return how, b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(body)) + body
    if how == "sysex":
        return how, midi_file(extra=b"\x00\xf0" + vlq(rng.choice([2**27 - 1, 5000])) + b"\x01\x02")
    if how == "flip":
        out = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            out[rng.randrange(14, len(out))] = rng.randrange(256)
        return how, bytes(out)
    if how == "unended":
        return how, midi_file([(i * 100, 10**6, 60 + i % 30, 90) for i in range(40)])
    if how == "pitch":
        return how, midi_file([(0, 100, rng.choice([0, 127, 128, 255]) & 0xFF, 80), (200, 100, 60, 0)])
    if how == "tempo":
        return how, midi_file(tempo=rng.choice([0, 1, 2**24 - 1]))
    if how == "empty":
        return how, rng.choice([b"", b"MThd", midi_file([])])
    return how, good[:8] + struct.pack(">H", rng.choice([1, 2, 3, 255])) + good[10:]


def _mutate_model(rng: random.Random, index: int) -> tuple[str, dict]:
    import pickle

    weights = (SHIPPED / "abc" / "model.safetensors").read_bytes()[:200_000]
    how = ["pickled", "truncated", "header-huge", "header-junk", "foreign-json", "not-json", "json-array",
           "layers-zero", "layers-huge", "hidden-negative", "vocab-mismatch", "vocabulary-twice", "no-config",
           "no-weights", "empty-weights", "format-version", "encoding-unknown", "features-unknown",
           "dtype", "wrong-kind", "midi-config-abc-weights", "weights-file-escape", "config-null",
           "embedding-huge", "truncated-small"][index % 25]
    if how == "pickled":
        return how, model_files(weights=pickle.dumps({"weights": [1, 2, 3]}))
    if how == "truncated":
        return how, model_files(weights=weights[:rng.randrange(9, len(weights))])
    if how == "truncated-small":
        return how, model_files(weights=weights[:rng.randrange(0, 9)])
    if how == "header-huge":
        return how, model_files(weights=struct.pack("<Q", 2**62) + b"{}")
    if how == "header-junk":
        return how, model_files(weights=struct.pack("<Q", 10) + b"not json!!")
    if how == "foreign-json":
        return how, model_files(lambda c: {"architectures": ["GPT2LMHeadModel"], "n_layer": 12})
    if how == "not-json":
        return how, model_files(lambda c: b"{not json")
    if how == "json-array":
        return how, model_files(lambda c: [1, 2, 3])
    if how == "layers-zero":
        return how, model_files(_edit(("model", "layers"), 0))
    if how == "layers-huge":
        return how, model_files(_edit(("model", "layers"), 10**12))
    if how == "hidden-negative":
        return how, model_files(_edit(("model", "hidden_size"), -5))
    if how == "vocab-mismatch":
        return how, model_files(_edit(("model", "vocab_size"), 7))
    if how == "vocabulary-twice":
        return how, model_files(lambda c: {**c, "vocabulary": c["vocabulary"][:-1] + [c["vocabulary"][1]]})
    if how == "no-config":
        return how, {"m/model.safetensors": Symlink(str(SHIPPED / "abc" / "model.safetensors"))}
    if how == "no-weights":
        files = model_files()
        del files["m/model.safetensors"]
        return how, files
    if how == "empty-weights":
        return how, model_files(weights=b"")
    if how == "format-version":
        return how, model_files(_edit(("format_version",), 999))
    if how == "encoding-unknown":
        return how, model_files(lambda c: {**c, "encoding": "klingon"})
    if how == "features-unknown":
        return how, model_files(_edit(("model", "features"), "nonsense-9"))
    if how == "dtype":
        return how, model_files(_edit(("weights", "dtype"), "int3"))
    if how == "wrong-kind":
        return how, model_files(lambda c: {**c, "format": "pytorch"})
    if how == "midi-config-abc-weights":
        return how, model_files(encoding="midi", weights=Symlink(str(SHIPPED / "abc" / "model.safetensors")))
    if how == "weights-file-escape":
        return how, model_files(_edit(("weights", "file"), "../../../../etc/passwd"))
    if how == "config-null":
        return how, model_files(lambda c: b"null")
    return how, model_files(_edit(("model", "embedding_size"), 2**40))


def generated_inputs(seed: int = 11, abc: int = 150, midi: int = 60, models: int = 30) -> list[Input]:
    """Seeded hostile files: mutated ABC, broken MIDI and bad model folders."""
    rng = random.Random(seed)
    bases = abc_bases()
    inputs = []
    for i in range(abc):
        how, data = _mutate_abc(rng.choice(bases), rng)
        inputs.append(Input(f"abc-{i:03d}-{how}", "abc", {f"abc-{i:03d}.abc": data}))
    for i in range(midi):
        how, data = _mutate_midi(rng)
        inputs.append(Input(f"midi-{i:03d}-{how}", "midi", {f"midi-{i:03d}.mid": data}))
    for i in range(models):
        how, files = _mutate_model(rng, i)
        inputs.append(Input(f"model-{i:03d}-{how}", "model",
                            {name.replace("m/", f"m{i:03d}/", 1): content for name, content in files.items()}))
    return inputs


def input_path(item: Input) -> str:
    first = next(iter(item.files))
    return first.split("/", 1)[0] if item.kind == "model" else first


# Bad values for each command's options: (command and the options that keep it cheap, option, values)
_OPTION_VALUES = ["-1", "0", "nan", "inf", "-inf", "1e309", "abc", "", "99999999999999999999", "1/0", "\u00e9\u202e",
                  "0x10", "--", "-0"]
_OPTIONS = [
    (["compose", "--seed", "1", "-f", "abc", "--out", "o"],
     ["--temperature", "--top-k", "--top-p", "--beam-width", "--compass", "--lookback", "--first-rest", "--part-bars",
      "--seed", "--meter", "--key", "--form", "--mode", "--rhythm", "--instrument", "--format", "--prime",
      "--model", "--out"]),
    (["generate", "-n", "2", "--seed", "1", "-f", "abc", "--out", "o"],
     ["-n", "--workers", "--temperature", "--top-p", "--seed", "--meter", "--format", "--key"]),
    (["render", "kesh.abc", "--out", "o"], ["--format", "--tempo", "--instrument", "--seed", "--out"]),
    (["transcribe", "tune.mid"], ["--meter", "--tempo", "--key", "--divisions", "--out"]),
    (["encode", "tune.mid"], ["--program", "--instrument"]),
    (["perform", "--seconds", "1", "--seed", "1", "--out", "o"],
     ["-n", "--seconds", "--max-events", "--temperature", "--top-p", "--max-note", "--max-voices", "--tempo",
      "--density", "--meter", "--key", "--rhythm", "--instrument"]),
    (["validate", "--no-novelty", "kesh.abc"], ["--instrument", "--against"]),
    (["tokenize", "kesh.abc"], ["--limit"]),
    (["info", "m"], []),
    (["corpus", "export", "--source", "kesh.abc", "--cache-dir", "cache"], ["--split", "--out", "--seed"]),
    (["corpus", "build", "--source", "kesh.abc", "--cache-dir", "cache"], ["--workers", "--encoding", "--seed"]),
    (["train", "--corpus", "kesh.abc", "--epochs", "1", "--hidden-size", "8", "--layers", "1",
      "--embedding-size", "8", "--max-batches", "1", "--out", "m2"],
     ["--epochs", "--hidden-size", "--layers", "--batch-size", "--lr", "--bptt", "--dropout", "--transpose",
      "--stretch", "--max-minutes", "--device", "--optimizer"]),
    (["evaluate", "--n", "1", "--titles", "0", "--out", "ev"], ["--temperature", "--seconds", "--n", "--model"]),
]


def option_cases(seed: int = 11, per_option: int = 2) -> list[Case]:
    """Each command with bad values for its options (``per_option`` values each, seeded)."""
    rng = random.Random(seed)
    cases = []
    base_files = {"kesh.abc": KESH, "tune.mid": midi_file(),
                  "m/config.json": (SHIPPED / "abc" / "config.json").read_bytes(),
                  "m/model.safetensors": Symlink(str(SHIPPED / "abc" / "model.safetensors"))}
    for base, options in _OPTIONS:
        for option in options:
            for value in rng.sample(_OPTION_VALUES, per_option):
                argv = list(base)
                if option in argv:  # replace the cheap value with the hostile one
                    argv[argv.index(option) + 1] = value
                else:
                    argv += [option, value]
                name = f"option {' '.join(base[:2] if base[0] == 'corpus' else base[:1])} {option}={value!r}"
                cases.append(Case(name, argv, dict(base_files), timeout=90,
                                  env={"FOLKRNN_CACHE": "{dir}/cache"}))
    return cases


# --- running generated inputs ---------------------------------------------------------------------


_DRIVER = r"""
import json, signal, sys, traceback
sys.setrecursionlimit(10000)
from pathlib import Path
from folkrnn.errors import FolkError

class Hang(BaseException):
    pass

def alarm(signum, frame):
    raise Hang()

signal.signal(signal.SIGALRM, alarm)

def check_abc(path):
    from folkrnn.abc import parse, read_text, split_tunebook, tokenize
    from folkrnn.render import render
    from folkrnn.validate import validate_file
    validate_file(path, novelty=None)
    for number, text in enumerate(split_tunebook(read_text(path), path)):
        try:
            tokenize(text.text)
        except FolkError:
            pass
        try:
            tune = parse(text.text)
        except FolkError:
            continue
        for suffix in (".abc", ".mid"):
            render(tune, Path(path).with_name(f"{Path(path).stem}-{number}{suffix}"), force=True)

def check_midi(path):
    from folkrnn.midi import encode_midi
    from folkrnn.transcribe import transcribe_midi
    failure = None
    for function in (encode_midi, transcribe_midi):
        try:
            function(path)
        except FolkError as error:
            failure = error
    if failure is not None:
        raise failure

def check_model(path):
    from folkrnn.checkpoint import load_model, model_card
    model_card(path)
    load_model(path)

checks = {"abc": check_abc, "midi": check_midi, "model": check_model}
jobs = json.load(sys.stdin)
for kind, path in jobs:
    signal.alarm(JOB_TIMEOUT)
    try:
        checks[kind](path)
        verdict = "ok"
    except FolkError as error:
        verdict = "error: " + str(error)
    except Hang:
        verdict = "hang"
    except BaseException as error:
        verdict = "crash: " + "".join(traceback.format_exception_only(type(error), error)).strip()
    signal.alarm(0)
    print(json.dumps([path, verdict]), flush=True)
"""


def run_library(inputs: list[Input], root: Path, job_timeout: int = 20) -> list[Outcome]:
    """Every input through the library in one subprocess (a crash of that process resumes after it)."""
    folder = case_folder(root, "library")
    for item in inputs:
        lay_out(folder, item.files)
    before = snapshot(folder)
    by_path = {input_path(item): item for item in inputs}
    pending = [(item.kind, input_path(item)) for item in inputs]
    verdicts: dict[str, str] = {}
    while pending:
        process = subprocess.run(
            [sys.executable, "-c", _DRIVER.replace("JOB_TIMEOUT", str(job_timeout))],
            input=json.dumps(pending).encode(), cwd=folder, capture_output=True, env=environment(folder),
            preexec_fn=_limits(GUARD_AS), timeout=job_timeout * len(pending) + 120)
        for line in process.stdout.decode("utf-8", "replace").splitlines():
            try:
                path, verdict = json.loads(line)
            except ValueError:
                continue
            verdicts[path] = verdict
        left = [job for job in pending if job[1] not in verdicts]
        if left:  # the process died on left[0]
            tail = process.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            verdicts[left[0][1]] = f"crash: the process died (exit {process.returncode}) {tail}"
            left = left[1:]
        pending = left
    orphans = wait_for_orphans(folder, 1.0)
    kill_pids(orphans)
    after = snapshot(folder)
    outcomes = []
    for path, verdict in verdicts.items():
        item = by_path[path]
        outcome = Outcome(f"library {item.name}", returncode=0 if verdict == "ok" else 1, stderr=verdict)
        outcome.hang = verdict == "hang"
        outcome.traceback = verdict.startswith("crash")
        for relative in item.files:
            if before.get(relative) != after.get(relative):
                outcome.lost.append(relative)
        outcomes.append(outcome)
    leftovers = [relative for relative in after if is_temporary(Path(relative).name)]
    if outcomes and (leftovers or orphans):
        outcomes[0].partial += leftovers
        outcomes[0].orphans += orphans
    return outcomes


def cli_sample(inputs: list[Input], count: int, seed: int = 11) -> list[Case]:
    """A seeded sample of the inputs through the CLI: ABC rendered, MIDI encoded and transcribed,
    models read by ``info`` and ``compose``."""
    rng = random.Random(seed)
    cases = []
    for item in rng.sample(inputs, min(count, len(inputs))):
        path = input_path(item)
        if item.kind == "abc":
            argvs = [["render", path, "--format", "mid", "--out", "o"], ["tokenize", path]]
        elif item.kind == "midi":
            argvs = [["encode", path], ["transcribe", path, "--out", "t.abc"]]
        else:
            argvs = [["info", path], ["compose", "--model", path, "--seed", "1", "-f", "abc", "--out", "o"]]
        for argv in argvs:
            cases.append(Case(f"cli {argv[0]} {item.name}", argv, dict(item.files), timeout=60))
    return cases


def validate_all(inputs: list[Input], root: Path, chunk: int = 80) -> list[Outcome]:
    """Every ABC input through one ``validate`` run per ``chunk`` files (it goes on past a file it
    cannot read); a chunk that crashes or hangs is run again file by file to find the culprit."""
    items = [item for item in inputs if item.kind == "abc"]
    outcomes = []
    for start in range(0, len(items), chunk):
        group = items[start:start + chunk]
        files = {name: content for item in group for name, content in item.files.items()}
        case = Case(f"validate {len(group)} ABC files", ["validate", "--no-novelty", *(input_path(i) for i in group)],
                    files, timeout=120)
        outcome = run_case(case, root)
        if outcome.kind in ("hang", "traceback") or outcome.orphans or outcome.lost or outcome.partial:
            for item in group:
                outcomes.append(run_case(Case(f"validate {item.name}", ["validate", "--no-novelty", input_path(item)],
                                              dict(item.files), timeout=30), root))
        else:
            refused = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
            for item in group:  # the run judged them all at once: each is refused or read
                path = input_path(item)
                outcomes.append(Outcome(f"validate {item.name}", returncode=int(any(path in line for line in refused))))
    return outcomes


def run_many(cases: list[Case], root: Path, parallel: int = 2) -> list[Outcome]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda case: run_case(case, root), cases))


# --- races --------------------------------------------------------------------------------------


def race(root: Path, argvs: list[list], files: dict | None = None, name: str = "race",
         timeout: float = 120) -> tuple[list[Outcome], Path]:
    """Start the runs at once in one folder (``{dir}``); each is judged, and the folder returned."""
    folder = case_folder(root, name)
    lay_out(folder, files or {})
    processes = []
    for argv in argvs:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "folkrnn", *expand(argv, folder)], cwd=folder, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, env=environment(folder),
            preexec_fn=_limits(GUARD_AS)))
    outcomes = []
    started = time.perf_counter()
    for argv, process in zip(argvs, processes):
        outcome = Outcome(f"{name}: {' '.join(map(str, argv))}")
        try:
            out, err = process.communicate(timeout=max(1.0, timeout - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            outcome.hang = True
            kill_session(process.pid)
            out, err = process.communicate()
        outcome.returncode, outcome.seconds = process.returncode, time.perf_counter() - started
        outcome.stdout, outcome.stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        outcome.traceback = "Traceback" in outcome.stdout + outcome.stderr
        outcome.lines_ok = stderr_is_one_line(outcome.stderr, outcome.returncode, outcome.stdout)
        outcomes.append(outcome)
    orphans = wait_for_orphans(folder, 3.0)
    kill_pids(orphans)
    if orphans:
        outcomes[0].orphans = orphans
    for relative in snapshot(folder):
        if is_temporary(Path(relative).name):
            outcomes[0].partial.append(relative)
    return outcomes, folder


def race_compose(root: Path) -> list[Outcome]:
    """Two composes of one title, different seeds, into one folder: one wins, the other says so."""
    argvs = [["compose", "--title", "Race Reel", "--seed", str(seed), "-f", "abc,mid", "--out", "o"]
             for seed in (1, 2)]
    outcomes, folder = race(root, argvs, name="race-compose")
    _judge_race(outcomes, folder, lambda outcome: outcome.stdout.encode("utf-8"), "o/race-reel.abc")
    return outcomes


def race_generate(root: Path) -> list[Outcome]:
    argvs = [["generate", "-n", "3", "--seed", str(seed), "-f", "abc,mid", "--title", "Race Reel", "--out", "o",
              "--workers", "1"] for seed in (1, 50)]
    outcomes, folder = race(root, argvs, name="race-generate")
    winners = [outcome for outcome in outcomes if outcome.returncode == 0]
    if len(winners) != 1:
        outcomes[0].problems.append(f"{len(winners)} of 2 generates succeeded, not 1")
    summary = folder / "o" / "summary.json"
    if winners and summary.exists():
        data = json.loads(summary.read_text())
        seeds = {tune["seed"] for tune in data["tunes"]}
        book = (folder / "o" / "tunes.abc").read_text()
        names = {name for tune in data["tunes"] for name in tune["files"]}
        for name in names:
            if not (folder / "o" / name).exists():
                outcomes[0].problems.append(f"{name} is in summary.json but was not kept")
        if book.count("X:") != data["written"]:
            outcomes[0].problems.append("tunes.abc and summary.json disagree")
        if not seeds:
            outcomes[0].problems.append("the winner's summary lists no tunes")
    for outcome in outcomes:
        if outcome.returncode != 0 and not (outcome.lines_ok and not outcome.traceback):
            outcome.problems.append("the loser did not say one line")
    return outcomes


def race_render(root: Path) -> list[Outcome]:
    """A render and a compose that write the same file at once: one wins, the other says so."""
    argvs = [["render", "race.abc", "--format", "abc", "--out", "o"],
             ["compose", "--title", "Race Reel", "--seed", "3", "-f", "abc", "--out", "o"]]
    files = {"race.abc": tunes_abc(1, title="Race Reel")}
    outcomes, folder = race(root, argvs, files, name="race-render")
    by_command = {0: lambda outcome: tunes_abc(1, title="Race Reel").encode("utf-8"),
                  1: lambda outcome: outcome.stdout.encode("utf-8")}
    _judge_race(outcomes, folder, None, "o/race-reel.abc", by_command)
    return outcomes


def _judge_race(outcomes, folder, content_of, relative, by_command=None) -> None:
    winners = [i for i, outcome in enumerate(outcomes) if outcome.returncode == 0]
    if len(winners) != 1:
        outcomes[0].problems.append(f"{len(winners)} of {len(outcomes)} runs succeeded, not 1 "
                                    f"({[o.stderr.strip()[-120:] for o in outcomes]})")
    for outcome in outcomes:
        if outcome.returncode != 0 and not outcome.lines_ok:
            outcome.problems.append("the loser did not say one line")
    if len(winners) == 1 and (folder / relative).exists() and by_command is None:
        written = (folder / relative).read_bytes()
        if written.strip() not in content_of(outcomes[winners[0]]):
            outcomes[0].problems.append(f"{relative} is not the winner's tune")


# --- signals ------------------------------------------------------------------------------------


def signal_case(command: str) -> Case:
    """A run of ``command`` ("generate", "train" or "corpus") long enough to be hit while working."""
    corpus = varied_tunes(400)
    if command == "generate":
        return Case("signal generate", ["generate", "-n", "400", "--seed", "1", "-f", "abc,mid", "--out", "o",
                                        "--workers", "2"], timeout=120)
    if command == "train":
        return Case("signal train", ["train", "--corpus", "tunes.abc", "--epochs", "1", "--hidden-size", "16",
                                     "--layers", "1", "--embedding-size", "8", "--batch-size", "4",
                                     "--eval-interval", "10", "--out", "m"],
                    {"tunes.abc": corpus}, env={"FOLKRNN_CACHE": "{dir}/cache"}, timeout=180)
    # several files, so that the build shares them among its worker processes
    return Case("signal corpus", ["corpus", "build", "--source", "tunes", "--cache-dir", "cache", "--workers", "2"],
                {f"tunes/{i}.abc": varied_tunes(1500, seed=i) for i in range(8)}, timeout=120)


def run_signal(root: Path, command: str, signum: int, delay: float, parent_only: bool = False) -> Outcome:
    """Send ``signum`` ``delay`` seconds into ``command``, to its group or to the parent alone,
    then judge: no orphans after a grace, nothing half-written, and for SIGINT and SIGTERM a
    tunebook and a summary that agree, or a model that loads."""
    case = signal_case(command)
    case.name = f"{case.name} {signal.Signals(signum).name} at {delay:.2f} s{' (parent)' if parent_only else ''}"
    running = launch(case, root)
    time.sleep(delay)
    try:
        if parent_only:
            os.kill(running.process.pid, signum)
        else:
            os.killpg(running.process.pid, signum)
    except OSError:
        pass
    outcome = settle(running, timeout=case.timeout, grace=3.0)
    if signum == signal.SIGKILL:  # a temporary may be left by a kill; the files named are whole all the same
        outcome.partial = [p for p in outcome.partial if not is_temporary(Path(p.split(":")[0]).name)]
        if outcome.returncode == -signal.SIGKILL:
            outcome.lines_ok = True  # killed: it had nothing to say
    if outcome.returncode == 0:
        return outcome  # finished before the signal came
    if not outcome.traceback and signum != signal.SIGKILL and not outcome.lines_ok:
        outcome.problems.append("more than one line on stderr")
    if signum in (signal.SIGINT, signal.SIGTERM) and command == "generate":
        outcome.problems += generate_consistent(running.folder / "o")
    if signum in (signal.SIGINT, signal.SIGTERM) and command == "train":
        outcome.problems += model_loads(running.folder / "m")
    return outcome


def generate_consistent(out: Path) -> list[str]:
    """tunes.abc and summary.json agree with each other and with the .mid files."""
    mids = {path.name for path in out.glob("*.mid")}
    summary, book = out / "summary.json", out / "tunes.abc"
    if not out.exists():
        return []
    if not summary.exists():
        return [] if not mids else [f"{len(mids)} .mid files but no summary.json"]
    data = json.loads(summary.read_text())
    listed = {name for tune in data["tunes"] for name in tune["files"]}
    problems = []
    if listed != mids:
        problems.append(f".mid files {len(mids)} and summary.json {len(listed)} disagree")
    written = book.read_text().count("\nX:") + book.read_text().startswith("X:") if book.exists() else 0
    if written != data["written"]:
        problems.append(f"tunes.abc holds {written} tunes, summary.json says {data['written']}")
    return problems


def model_loads(out: Path) -> list[str]:
    if not (out / "config.json").exists():
        return []
    probe = subprocess.run([sys.executable, "-c", "import sys; from folkrnn.checkpoint import load_model; "
                            "load_model(sys.argv[1])", str(out)], capture_output=True, text=True,
                           env=environment(out))
    return [] if probe.returncode == 0 else [f"the model left does not load: {probe.stderr.strip()[-200:]}"]


def signal_plan(seed: int = 11, count: int = 12) -> list[tuple[str, int, float, bool]]:
    """Seeded (command, signal, delay, parent only) choices."""
    rng = random.Random(seed)
    plan = []
    for _ in range(count):
        command = rng.choice(["generate", "train", "corpus"])
        signum = rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
        longest = {"generate": 12.0, "train": 10.0, "corpus": 3.0}[command]  # about how long each runs here
        plan.append((command, signum, rng.uniform(0.3, longest), rng.random() < 0.3))
    return plan


# --- counting -----------------------------------------------------------------------------------


def counts(outcomes: list[Outcome]) -> dict:
    kinds = [outcome.kind for outcome in outcomes]
    return {
        "tried": len(outcomes),
        "clean_errors": kinds.count("clean error"),
        "accepted": kinds.count("accepted"),
        "unclean_errors": kinds.count("unclean error"),
        "tracebacks": kinds.count("traceback"),
        "hangs": kinds.count("hang"),
        "files_lost": sum(bool(outcome.lost or outcome.partial) for outcome in outcomes),
        "orphans": sum(bool(outcome.orphans) for outcome in outcomes),
        "unexpected": sum(bool(outcome.problems) for outcome in outcomes),
    }
