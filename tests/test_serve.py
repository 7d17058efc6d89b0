"""folkrnn serve's HTTP API (docs/serve.md), the shared decoding loop under it, and the command.

The tunes are checked against ``folkrnn compose`` run as a command (the same bytes), the files
against mido, pretty_midi and music21; the browser test is tests/test_serve_browser.py."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from folkrnn.compose import ComposeOptions, compose, load_composer
from folkrnn.decode.loop import decode
from folkrnn.decode.shared import CANCELLED, SharedLoop
from folkrnn.sample import AbcConstraint, Conditions, SampleConfig, check_request, sample_tunes
from folkrnn.serve.app import SECURITY_HEADERS, Settings, create_app
from folkrnn.serve.fields import FieldError, canonical_query, parse_query
from folkrnn.serve.studio import Draft
from serving import start_serve, stop


def events(text: str) -> list[tuple[str, dict]]:
    """The server-sent events of a response body: (name, data)."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "tunebook.sqlite"
    app = create_app(Settings(db=str(db), rate=1000, burst=10_000))  # budgets: their own tests below
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# ---------------------------------------------------------------------------------------------
# composing: the same tune as the command


def test_the_stream_gives_exactly_the_tune_folkrnn_compose_writes(client, tmp_path):
    response = client.get("/api/compose", params={"rhythm": "jig", "seed": "11", "temperature": "0.9"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in events(response.text)]
    assert names[0] == "start" and names[-1] == "tune" and "progress" in names
    start = events(response.text)[0][1]
    assert start == {"seed": "11", "query": "rhythm=jig&seed=11&temperature=0.9"}
    tune = events(response.text)[-1][1]
    run = subprocess.run([sys.executable, "-m", "folkrnn", "compose", "--rhythm", "jig", "--seed", "11",
                          "--temperature", "0.9", "-f", "abc", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    written, = tmp_path.glob("*.abc")
    assert tune["abc"] == written.read_text(encoding="utf-8")
    assert tune["summary"]["valid"] and tune["query"] == start["query"]
    # the progress events grow a tune in C that abcjs can draw: a header, then bars
    progress = [data for name, data in events(response.text) if name == "progress"]
    assert progress[-1]["abc"].startswith("X:1\nT:") and "K:C" in progress[-1]["abc"]


def test_the_batch_steps_an_engine_no_other_caller_can(client):
    """The composer is cached for the process; its engine's work arrays are not for two threads. The
    shared batch steps a twin of its own, so that compose() called beside the server (another thread,
    another Studio) and the server's tunes are each the tune their seed makes."""
    studio = client.app.state.studio
    cached = load_composer(None)
    assert studio.loop.engine is not cached.engine and studio.loop.engine._head_w is cached.engine._head_w
    options = [ComposeOptions(seed=seed, rhythm="jig", formats=["abc"]) for seed in range(40, 46)]
    alone = [compose(o, write=False).abc for o in options]
    with ThreadPoolExecutor(2) as pool:  # the same tunes, composed in this thread and through the server at once
        served = pool.submit(lambda: [events(client.get("/api/compose", params={"rhythm": "jig", "seed": str(o.seed)})
                                             .text)[-1][1]["abc"] for o in options])
        beside = [compose(o, write=False).abc for o in options]
    assert beside == alone and served.result() == alone


def test_a_missing_seed_is_drawn_and_said(client):
    first = events(client.get("/api/compose", params={"rhythm": "reel"}).text)
    seed = first[0][1]["seed"]
    assert seed.isdigit() and f"seed={seed}" in first[0][1]["query"]
    again = events(client.get("/api/compose?" + first[0][1]["query"]).text)
    assert again[-1][1]["abc"] == first[-1][1]["abc"]


def test_a_title_names_its_dance_as_on_the_command_line(client):
    data = events(client.get("/api/compose", params={"title": "The Silver Spear Reel", "seed": "3"}).text)[-1][1]
    options = ComposeOptions(title="The Silver Spear Reel", seed=3)
    assert data["abc"] == compose(options, write=False).abc
    assert "R:reel" in data["abc"]


def test_the_shared_loop_gives_each_request_the_tune_made_alone():
    """Requests with different options in one batch: each tune bit for bit the one made alone."""
    composer = load_composer()
    loop = SharedLoop(composer.engine, capacity=64)
    requests = [dict(seed=seed, rhythm=("reel", "jig", "hornpipe", None)[seed % 4],
                     temperature=(1.0, 0.8, 1.3)[seed % 3], top_k=(0, 0, 20)[seed % 3]) for seed in range(24)]
    alone = [compose(ComposeOptions(**options), composer=composer, write=False).abc for options in requests]
    with ThreadPoolExecutor(24) as pool:
        shared = list(pool.map(lambda options: compose(ComposeOptions(**options), composer=composer, write=False,
                                                       decoder=loop.decode).abc, requests))
    assert shared == alone
    assert loop.steps < sum(len(text) for text in alone)  # the requests stepped together
    loop.close()


def test_the_shared_loop_decodes_as_the_loop_alone_and_cancels():
    composer = load_composer()
    engine, vocabulary = composer.engine, composer.vocabulary
    config = SampleConfig()
    loop = SharedLoop(engine, capacity=16)
    seeds = list(range(40, 52))
    expected = sample_tunes(engine, vocabulary, seeds, config=config, conditions=Conditions(rhythm="reel"))
    got = sample_tunes(engine, vocabulary, seeds, config=config, conditions=Conditions(rhythm="reel"),
                       decoder=loop.decode)
    assert [t.tokens for t in got] == [t.tokens for t in expected]
    assert [t.index for t in got] == list(range(len(seeds)))
    # a cancelled request ends at once, every tune failed as cancelled
    from folkrnn.sample import _plan  # noqa: PLC2701 (the test builds a constraint by hand)

    constraint = AbcConstraint(_plan(vocabulary, Conditions(), config, engine.features), config, vocabulary)
    request = loop.submit(constraint, config, range(1000, 1100), attempts=3)
    request.cancel()
    results = request.wait(timeout=60)
    assert len(results) == 100 and not any(result.ok for result in results)
    assert all(result.failures[-1][1] == CANCELLED for result in results)
    assert decode(engine, constraint, config, [5])[0].ok  # the constraint itself is still whole
    loop.close()


def test_a_draft_grows_token_by_token():
    composed = compose(ComposeOptions(seed=5, rhythm="reel"), write=False)
    draft = Draft()
    for token in composed.tokens:
        draft.add([token])
    text = draft.text()
    assert text.startswith("X:1\nT:") and "\nL:1/8\nK:C" in text and draft.tokens == len(composed.tokens)
    assert text.count("|") >= 8


# ---------------------------------------------------------------------------------------------
# refusals: a 4xx JSON body naming the field


@pytest.mark.parametrize("query, status, field", [
    ("bogus=1", 400, "bogus"),
    ("temperature=-1", 422, "temperature"),
    ("temperature=9", 422, "temperature"),
    ("temperature=nan", 400, "temperature"),
    ("temperature=abc", 400, "temperature"),
    ("top_p=0", 422, "top_p"),
    ("top_k=100000", 422, "top_k"),
    ("seed=-3", 400, "seed"),
    ("seed=99999999999999999999", 400, "seed"),
    ("seed=9223372036854775808", 422, "seed"),
    ("seed=1&seed=2", 400, "seed"),
    ("beam_width=50&strategy=beam", 422, "beam_width"),
    ("strategy=magic", 422, "strategy"),
    ("rhythm=polka", 422, "rhythm"),
    ("rhythm=%3Cscript%3E", 400, "rhythm"),
    ("meter=7/0", 422, "meter"),
    ("mode=happy", 422, "mode"),
    ("form=ABBA", 422, "form"),
    ("part_bars=0", 422, "part_bars"),
    ("tempo=1000", 422, "tempo"),
    ("instrument=kazoo", 422, "instrument"),
    ("title=" + "x" * 101, 422, "title"),
    ("prime=" + "a" * 401, 422, "prime"),
    ("prime=zz%3E%3E", 422, "prime"),
    ("title=a%00b", 400, "title"),
])
def test_bad_fields_are_refused_naming_the_field(client, query, status, field):
    response = client.get("/api/compose?" + query)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["field"] == field and body["error"]["message"]
    assert "Traceback" not in response.text


def test_prime_is_checked_as_typed(client):
    assert client.get("/api/prime", params={"prime": "|: GABc dedB :|"}).json()["ok"] is True
    bad = client.get("/api/prime", params={"prime": "GA>>"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "prime"
    assert client.get("/api/prime", params={"nope": "1"}).status_code == 400


def test_fields_round_trip_canonically():
    options = parse_query({"seed": "7", "rhythm": "reel", "mode": "dorian", "temperature": "1.0", "title": " "})
    assert canonical_query(options) == "rhythm=reel&mode=dor&seed=7"
    assert canonical_query(parse_query(canonical_query(options).split("&") and
                                       dict(pair.split("=") for pair in canonical_query(options).split("&")))) \
        == canonical_query(options)
    with pytest.raises(FieldError) as caught:
        parse_query({"rhythm": "reel"}, need_seed=True)
    assert caught.value.field == "seed"


# ---------------------------------------------------------------------------------------------
# downloads, read by real tools


def test_downloads_are_the_command_s_files_and_real_tools_read_them(client, tmp_path):
    query = "rhythm=hornpipe&seed=21"
    abc = client.get(f"/api/tune.abc?{query}")
    assert abc.status_code == 200 and abc.text == compose(ComposeOptions(rhythm="hornpipe", seed=21), write=False).abc
    run = subprocess.run([sys.executable, "-m", "folkrnn", "compose", "--rhythm", "hornpipe", "--seed", "21",
                          "-f", "mid,musicxml", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    midi = client.get(f"/api/tune.mid?{query}")
    assert midi.headers["content-type"] == "audio/midi"
    assert midi.content == next(tmp_path.glob("*.mid")).read_bytes()
    import mido
    import pretty_midi

    assert mido.MidiFile(file=io.BytesIO(midi.content)).length > 5
    assert pretty_midi.PrettyMIDI(io.BytesIO(midi.content)).instruments[0].notes
    xml = client.get(f"/api/tune.musicxml?{query}")
    assert xml.content == next(tmp_path.glob("*.musicxml")).read_bytes()
    import music21

    score = music21.converter.parse(xml.content, format="musicxml")
    assert len(score.flatten().notes) > 20
    svg = client.get(f"/api/tune.svg?{query}")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content[:400]
    assert 'filename="' in svg.headers["content-disposition"]
    for seed in (22, 23, 24):  # each from whichever thread is free: verovio finds its fonts in every one
        assert client.get(f"/api/tune.svg?rhythm=hornpipe&seed={seed}").status_code == 200
    assert client.get("/api/tune.mid?rhythm=reel").json()["error"]["field"] == "seed"
    assert client.get(f"/api/tune.exe?{query}").status_code == 404
    assert client.get(f"/api/tune..%2F..%2Fetc%2Fpasswd?{query}").status_code == 404


# ---------------------------------------------------------------------------------------------
# the tunebook over HTTP


def test_the_tunebook_saves_lists_searches_exports_and_removes(client):
    saved = client.post("/api/tunebook", json={"query": "rhythm=reel&seed=31"})
    assert saved.status_code == 201, saved.text
    tune_id = saved.json()["id"]
    again = client.post("/api/tunebook", json={"query": "seed=31&rhythm=reel"})  # the same tune, another order
    assert again.status_code == 200 and again.json()["id"] == tune_id
    client.post("/api/tunebook", json={"query": "rhythm=jig&seed=32"})
    listing = client.get("/api/tunebook", params={"rhythm": "reel"}).json()
    assert any(tune["id"] == tune_id for tune in listing["tunes"])
    assert all(tune["rhythm"] == "reel" for tune in listing["tunes"])
    one = client.get(f"/api/tunebook/{tune_id}").json()
    assert one["abc"] == compose(ComposeOptions(rhythm="reel", seed=31), write=False).abc
    title = one["title"]
    assert client.get("/api/tunebook", params={"q": title[:4].lower()}).json()["total"] >= 1
    book = client.get("/api/tunebook.abc")
    assert book.status_code == 200 and book.text.count("X:") >= 2
    assert client.delete(f"/api/tunebook/{tune_id}").status_code == 204
    assert client.get(f"/api/tunebook/{tune_id}").status_code == 404
    assert client.delete(f"/api/tunebook/{tune_id}").status_code == 404
    assert client.get("/api/tunebook/abc").status_code == 404


@pytest.mark.parametrize("body, status", [
    (b"not json", 400), (b"[]", 400), (b'{"query": 3}', 400), (b'{"query": "seed=1", "x": 1}', 400),
    (b'{"query": "rhythm=reel"}', 400), (b'{"query": "seed=1&temperature=-2"}', 422),
    (b'{"query": "' + b"a" * 20000 + b'"}', 413),
])
def test_bad_saves_are_refused(client, body, status):
    response = client.post("/api/tunebook", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert "error" in response.json()


def test_bad_tunebook_queries_are_refused(client):
    assert client.get("/api/tunebook", params={"limit": "1000"}).status_code == 422
    assert client.get("/api/tunebook", params={"offset": "-1"}).status_code == 400
    assert client.get("/api/tunebook", params={"sort": "title"}).status_code == 400
    assert client.get("/api/tunebook", params={"q": "100%_'\"; DROP TABLE tunes; --"}).json()["total"] == 0


# ---------------------------------------------------------------------------------------------
# safety: headers, limits


def test_every_response_carries_the_security_headers(client):
    for path in ("/api/options", "/api/compose?bogus=1", "/api/nothing", "/static/../pyproject.toml"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
    assert "default-src 'self'" in SECURITY_HEADERS["content-security-policy"]
    assert client.get("/static/../pyproject.toml").status_code == 404


def test_options_list_what_the_model_knows(client):
    options = client.get("/api/options").json()
    assert "reel" in options["rhythms"] and "6/8" in options["meters"]
    assert {"code": "dor", "name": "dorian"} in options["modes"]
    assert "AABB" in options["forms"] and "fiddle" in [i["name"] for i in options["instruments"]]
    assert set(options["formats"]) == {"abc", "mid", "musicxml", "svg"}


def test_a_client_over_its_budget_gets_429(tmp_path):
    app = create_app(Settings(db=str(tmp_path / "t.sqlite"), rate=0.5, burst=3))
    with TestClient(app) as limited:
        codes = [limited.get("/api/health").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        refused = limited.get("/api/options")
        assert refused.json()["error"]["message"] and int(refused.headers["retry-after"]) >= 1
        assert limited.get("/static/nothing.js").status_code == 404  # pages and files are not counted


def test_too_many_tunes_at_once_get_429(tmp_path):
    app = create_app(Settings(db=str(tmp_path / "t.sqlite"), composing=0))
    with TestClient(app) as full:
        response = full.get("/api/compose?seed=1")
        assert response.status_code == 429 and response.headers["retry-after"]
        assert full.get("/api/tune.abc?seed=1").status_code == 429


def test_check_request_refuses_what_the_model_cannot_do():
    vocabulary = load_composer().vocabulary
    from folkrnn.errors import OptionError

    with pytest.raises(OptionError, match="R:polka"):
        check_request(vocabulary, Conditions(rhythm="polka"), SampleConfig())
    assert check_request(vocabulary, Conditions(rhythm="reel", title="The Reel"), SampleConfig()) == []


def test_random_and_hostile_requests_get_4xx_never_5xx(client):
    from serve_fuzz_cases import cases

    statuses = []
    for method, path, query, body, headers in cases(300, seed=11):
        response = client.request(method, path, params=query, content=body, headers=headers)
        statuses.append(response.status_code)
        assert response.status_code < 500, (method, path, query, body and body[:80], response.text[:200])
        assert "Traceback" not in response.text
        if path.startswith("/api/") and response.status_code >= 400 and method != "HEAD":
            assert response.json()["error"]["message"]
    assert sum(400 <= status < 500 for status in statuses) > 150
    assert client.get("/api/health").json()["ok"] is True


# ---------------------------------------------------------------------------------------------
# the command


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_folkrnn_serve_starts_answers_and_stops(tmp_path, workers):
    import httpx

    started = time.monotonic()
    process, base = start_serve(tmp_path, tmp_path / "book.sqlite", workers=workers)
    try:
        assert time.monotonic() - started < 30
        log, = tmp_path.glob("serve-*.log")
        assert f"{base}/" in log.read_text().splitlines()[0]
        tune = events(httpx.get(f"{base}/api/compose?seed=4&rhythm=jig", timeout=60).text)[-1][1]
        assert tune["abc"] == compose(ComposeOptions(seed=4, rhythm="jig"), write=False).abc
        saved = httpx.post(f"{base}/api/tunebook", json={"query": tune["query"]}, timeout=60)
        assert saved.status_code == 201
    finally:
        stop(process)
    assert (tmp_path / "book.sqlite").exists()


def test_serve_refuses_a_port_in_use_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "folkrnn", "serve", "--port", str(port), "--db",
                              str(tmp_path / "b.sqlite")], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert str(port) in run.stderr
    for bad in (["--port", "70000"], ["--workers", "0"], ["--db", str(tmp_path)]):
        run = subprocess.run([sys.executable, "-m", "folkrnn", "serve", *bad], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
        assert run.returncode != 0 and "Traceback" not in run.stderr, (bad, run.stderr)


# ---------------------------------------------------------------------------------------------
# the tunebook behind real servers: kill -9, and two servers sharing one database


@pytest.mark.slow
def test_nothing_saved_is_lost_when_the_server_is_killed(db_url, tmp_path):
    """kill -9 right after the saves were answered: every tune is there when a server opens the tunebook again."""
    import signal

    import httpx

    process, base = start_serve(tmp_path, db_url)
    saved = {}
    try:
        for seed in range(40, 52):
            answer = httpx.post(f"{base}/api/tunebook", json={"query": f"rhythm=jig&seed={seed}"}, timeout=60)
            assert answer.status_code == 201
            saved[answer.json()["id"]] = seed
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    process, base = start_serve(tmp_path, db_url)
    try:
        for tune_id, seed in saved.items():
            tune = httpx.get(f"{base}/api/tunebook/{tune_id}", timeout=30).json()
            assert tune["seed"] == str(seed) and tune["abc"].startswith("X:")
        assert httpx.get(f"{base}/api/tunebook", timeout=30).json()["total"] == len(saved)
    finally:
        stop(process)


@pytest.mark.slow
def test_two_servers_share_one_tunebook(db_url, tmp_path):
    """Two folkrnn serve processes on one database (PostgreSQL: as on two machines): what one saves, the
    other lists; the same tune saved through both is kept once."""
    import httpx

    (one, first_base), (two, second_base) = start_serve(tmp_path, db_url), start_serve(tmp_path, db_url)
    try:
        first = httpx.post(f"{first_base}/api/tunebook", json={"query": "rhythm=reel&seed=61"}, timeout=60)
        second = httpx.post(f"{second_base}/api/tunebook", json={"query": "seed=61&rhythm=reel"}, timeout=60)
        assert first.status_code == 201 and second.status_code == 200
        assert first.json()["id"] == second.json()["id"]
        httpx.post(f"{second_base}/api/tunebook", json={"query": "rhythm=hornpipe&seed=62"}, timeout=60)
        listed = httpx.get(f"{first_base}/api/tunebook", timeout=30).json()
        assert listed["total"] == 2 and {tune["rhythm"] for tune in listed["tunes"]} == {"reel", "hornpipe"}
    finally:
        stop(one)
        stop(two)


def test_a_failure_inside_the_server_reaches_the_page_as_an_error_event(tmp_path, monkeypatch):
    """A bug while composing (here: the studio raising) is an `error` event on the stream, not a cut connection."""
    app = create_app(Settings(db=str(tmp_path / "t.sqlite")))
    studio = app.state.studio

    def broken(options, watch=None):
        raise RuntimeError("a bug")

    monkeypatch.setattr(studio, "compose", broken)
    with TestClient(app, raise_server_exceptions=False) as broken_client:
        names = events(broken_client.get("/api/compose?seed=1").text)
        assert [name for name, _ in names] == ["start", "error"]
        assert "failed" in names[-1][1]["message"] and "a bug" not in names[-1][1]["message"]
        assert broken_client.get("/api/health").json()["composing"] == 0  # its place was given back
