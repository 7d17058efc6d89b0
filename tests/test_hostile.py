"""The reliability suite of issue 11: hostile input, races and signals, each through the real CLI.

Each case runs ``python -m folkrnn`` in a folder of its own and is judged by
:mod:`hostile_cases`: no traceback, one line on stderr for an error, no process left behind, no
file lost, half-written or left as a temporary. The cases and their generator are shared with
``benchmarks/hostile.py``, which prints the counts.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hostile_cases as hostile
from folkrnn.errors import OptionError

NAMED = {case.name: case for case in hostile.named_cases()}
INPUTS = hostile.generated_inputs()


def _judge(outcomes) -> None:
    bad = [outcome.describe() for outcome in outcomes if not outcome.ok]
    assert not bad, f"{len(bad)} of {len(outcomes)} not clean:\n" + "\n".join(bad)


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path


# --- files.py: nothing replaced without force, even by a racing writer -----------------------------


def test_write_atomic_refuses_an_existing_file_without_force(tmp_path):
    from folkrnn.files import write_atomic

    target = tmp_path / "tune.abc"
    target.write_text("mine\n")
    with pytest.raises(OptionError, match="exists"):
        write_atomic(target, "theirs\n", overwrite=False)
    assert target.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tune.abc"]  # no temporary left
    write_atomic(target, "theirs\n")
    assert target.read_text() == "theirs\n"


def test_a_dangling_symlink_counts_as_existing(tmp_path):
    from folkrnn.files import exists, write_atomic

    link = tmp_path / "tune.abc"
    link.symlink_to(tmp_path / "nowhere.abc")
    assert exists(link)
    with pytest.raises(OptionError, match="exists"):
        write_atomic(link, "x\n", overwrite=False)
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "nowhere.abc")


def test_create_if_absent_without_hard_links(tmp_path, monkeypatch):
    """Where the file system has no hard links, O_EXCL still creates the file only if absent."""
    from folkrnn import files

    def no_links(source, target, **_):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    target = tmp_path / "a.mid"
    files.write_atomic(target, b"one", overwrite=False)
    assert target.read_bytes() == b"one"
    with pytest.raises(OptionError, match="exists"):
        files.write_atomic(target, b"two", overwrite=False)
    assert target.read_bytes() == b"one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mid"]


@pytest.mark.parametrize("where", ["as the file appears", "as it is opened"])
def test_an_interruption_as_the_temporary_file_appears_leaves_nothing(tmp_path, monkeypatch, where):
    """Ctrl-C or SIGTERM (KeyboardInterrupt) landing the moment the temporary file is made, before
    its name is back in the writer's hands, leaves no file behind (CI once found a
    ``.name.xxxx.part`` left by generate under SIGTERM)."""
    from folkrnn import files

    made = files._create

    def interrupted_create(path):
        handle = made(path)
        if where == "as the file appears":
            raise KeyboardInterrupt
        return handle

    def interrupted_open(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files, "_create", interrupted_create)
    if where == "as it is opened":
        monkeypatch.setattr(files.os, "fdopen", interrupted_open)
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(tmp_path / "tune.mid", b"MThd")
    assert list(tmp_path.iterdir()) == []


def test_only_one_of_many_racing_writers_wins(tmp_path):
    """Threads racing to create one file: exactly one succeeds, and its bytes are the file's."""
    from concurrent.futures import ThreadPoolExecutor

    from folkrnn.files import write_atomic

    target = tmp_path / "race.abc"

    def write(i: int):
        try:
            write_atomic(target, f"writer {i}\n", overwrite=False)
            return i
        except OptionError:
            return None

    with ThreadPoolExecutor(8) as pool:
        winners = [i for i in pool.map(write, range(32)) if i is not None]
    assert len(winners) == 1
    assert target.read_text() == f"writer {winners[0]}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.abc"]


# --- the items of issue 11, through the CLI ---------------------------------------------------------


@pytest.mark.parametrize("name", [name for name, case in NAMED.items() if not case.slow])
def test_named_case(name, root):
    _judge([hostile.run_case(NAMED[name], root)])


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, case in NAMED.items() if case.slow])
def test_named_case_slow(name, root):
    _judge([hostile.run_case(NAMED[name], root)])


def test_evaluate_refuses_before_the_slow_work(root):
    outcome = hostile.run_case(NAMED["evaluate-existing-report"], root)
    _judge([outcome])
    assert outcome.seconds < 10, "evaluate refused only after doing its work"
    assert "--force" in outcome.stderr


# --- generated inputs ------------------------------------------------------------------------------


def test_enough_generated_inputs():
    assert len(INPUTS) >= 200
    assert {item.kind for item in INPUTS} == {"abc", "midi", "model"}
    assert len(hostile.option_cases()) >= 100


def test_generated_inputs_through_the_library(root):
    """Every generated ABC, MIDI and model file through the library (one process): a FolkError or a result."""
    rng = random.Random(1)
    sample = [item for item in INPUTS if item.kind != "abc"] + rng.sample(
        [item for item in INPUTS if item.kind == "abc"], 40)
    _judge(hostile.run_library(sample, root, job_timeout=20))


@pytest.mark.slow
def test_all_generated_inputs_through_the_library(root):
    _judge(hostile.run_library(INPUTS, root, job_timeout=20))


def test_generated_abc_through_validate(root):
    """Every generated ABC file through ``folkrnn validate`` (one run reads them all)."""
    _judge(hostile.validate_all(INPUTS, root, chunk=150))


def test_generated_inputs_through_the_cli(root):
    _judge(hostile.run_many(hostile.cli_sample(INPUTS, 6, seed=3), root))


def test_bad_option_values_sample(root):
    """A seeded sample of the cheap commands' bad option values (all of them: the slow test below)."""
    heavy = ("train", "evaluate", "perform")
    cheap = [case for case in hostile.option_cases(per_option=1) if case.argv[0] not in heavy]
    cases = random.Random(5).sample(cheap, 12)
    _judge(hostile.run_many(cases, root))


@pytest.mark.slow
def test_bad_option_values_all(root):
    _judge(hostile.run_many(hostile.option_cases(), root))


# --- races ------------------------------------------------------------------------------------------


def test_race_two_composes(root):
    _judge(hostile.race_compose(root))


def test_race_render_and_compose(root):
    _judge(hostile.race_render(root))


@pytest.mark.slow
def test_race_two_generates(root):
    _judge(hostile.race_generate(root))


# --- signals ----------------------------------------------------------------------------------------


def _wait_for(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_workers_die_with_their_parent(root):
    """SIGKILL to generate's parent alone (the OOM killer, ``kill -9``): its workers follow it."""
    case = hostile.signal_case("generate")
    running = hostile.launch(case, root)
    try:
        assert _wait_for(lambda: len(hostile.processes_of(running.folder)) >= 3), "the workers never started"
        os.kill(running.process.pid, signal.SIGKILL)
        running.process.wait()
        assert hostile.wait_for_orphans(running.folder, 5.0) == []
    finally:
        hostile.kill_pids(hostile.processes_of(running.folder))
        running.process.communicate()


def test_sigterm_keeps_the_finished_tunes(root):
    """SIGTERM to the group mid-run, as ``timeout`` or a service manager sends it: like Ctrl-C, the
    finished tunes are kept in a tunebook and a summary that agree with the .mid files."""
    case = hostile.signal_case("generate")
    running = hostile.launch(case, root)
    out = running.folder / "o"
    assert _wait_for(lambda: len(list(out.glob("*.mid"))) >= 3), "no tune was finished"
    os.killpg(running.process.pid, signal.SIGTERM)
    outcome = hostile.settle(running, timeout=60)
    _judge([outcome])
    assert outcome.returncode not in (0, None)
    assert (out / "tunes.abc").exists() and (out / "summary.json").exists()
    assert hostile.generate_consistent(out) == []
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True


@pytest.mark.slow
@pytest.mark.parametrize("plan", hostile.signal_plan(count=12),
                         ids=lambda plan: f"{plan[0]}-{signal.Signals(plan[1]).name}-{plan[2]:.1f}s"
                         + ("-parent" if plan[3] else ""))
def test_signal_at_a_random_moment(plan, root):
    _judge([hostile.run_signal(root, *plan)])


@pytest.mark.slow
def test_sigterm_leaves_a_model_that_loads(root):
    case = hostile.signal_case("train")
    running = hostile.launch(case, root)
    assert _wait_for(lambda: (running.folder / "m" / "model.safetensors").exists(), 120), "no checkpoint"
    os.killpg(running.process.pid, signal.SIGTERM)
    outcome = hostile.settle(running, timeout=60)
    _judge([outcome])
    assert hostile.model_loads(running.folder / "m") == []


@pytest.mark.slow
def test_resume_after_a_kill_mid_log_line(root):
    """A kill while train_log.jsonl is being appended leaves half a line: --resume drops it."""
    argv = ["train", "--corpus", "tunes.abc", "--epochs", "1", "--hidden-size", "16", "--layers", "1",
            "--embedding-size", "8", "--batch-size", "8", "--eval-interval", "5", "--max-batches", "10",
            "--out", "m"]
    first = hostile.run_case(hostile.Case("train", argv, {"tunes.abc": hostile.varied_tunes(120)},
                                          env={"FOLKRNN_CACHE": "{dir}/cache"}), root)
    _judge([first])
    folder = next(root.glob("hostile-train-*"))
    with open(folder / "m" / "train_log.jsonl", "a", encoding="utf-8") as log:
        log.write('{"epoch": 0.9, "batc')
    resumed = subprocess.run([sys.executable, "-m", "folkrnn", "train", "--resume", "--epochs", "2", "--out", "m"],
                             cwd=folder, capture_output=True, text=True, timeout=300,
                             env=hostile.environment(folder, {"FOLKRNN_CACHE": "{dir}/cache"}))
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr[-2000:]
    lines = (folder / "m" / "train_log.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)


# --- a memory ceiling -------------------------------------------------------------------------------

CEILING = 2**30  # 1 GB of address space: numpy and the NumPy sampler fit (torch imports in it too)


@pytest.mark.slow
@pytest.mark.parametrize("argv, files", [
    (["generate", "-n", "1000000000", "--out", "o"], {}),
    (["generate", "-n", "200", "--seed", "1", "-f", "abc", "--out", "o"], {}),
    (["validate", "--no-novelty", "big.abc"], {"big.abc": hostile.tunes_abc(30_000)}),
    (["render", "wide.abc", "--format", "mid", "--out", "o"],
     {"wide.abc": "X:1\nT:W\nM:4/4\nL:1/8\nK:C\n" + "abcd" * 50_000 + "|\n"}),
    (["compose", "--seed", "1", "--out", "o"], {}),
    (["transcribe", "many.mid"], {"many.mid": hostile.midi_file([(i * 60, 50, 60 + i % 12, 80)
                                                                  for i in range(50_000)])}),
], ids=["generate-billion", "generate-200", "validate-big", "render-wide", "compose", "transcribe-50k"])
def test_under_a_memory_ceiling(argv, files, root):
    case = hostile.Case(f"1 GB: {argv[0]}", argv, files, limit_as=CEILING, timeout=120)
    outcome = hostile.run_case(case, root)
    _judge([outcome])
    assert "MemoryError" not in outcome.stderr and outcome.returncode >= 0, "killed, not refused"


def test_the_suite_sees_its_own_processes_only(root):
    """The orphan check finds a process by its folder, and nothing of another folder."""
    folder = hostile.case_folder(root, "probe")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=folder)
    try:
        assert sleeper.pid in hostile.processes_of(folder)
        assert sleeper.pid not in hostile.processes_of(hostile.case_folder(root, "other"))
    finally:
        sleeper.kill()
        sleeper.wait()
