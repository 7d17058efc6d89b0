"""folkrnn serve's pages in a real browser: headless Chromium driven by Selenium, against a real
``folkrnn serve`` started as a command.

The tunes the page shows are checked against ``folkrnn compose`` run as a command (the same ABC, the
same MIDI and MusicXML bytes); the sheet against folkrnn's own ABC parser (every bar line drawn); the
player by its cursor; the pages' safety by a hostile title. All along, every request the browser
makes is read from Chrome's performance log (each must go to the server: the page asks no other host
for anything) and every console error from its browser log (none but the 422s a test provokes).

Needs Debian's ``chromium`` and ``chromium-driver``; without them the tests are skipped, unless
``CI_REQUIRE_BROWSER=1``, where they fail. Screenshots go to ``outputs/screenshots/``; with
``FOLKRNN_UPDATE_SCREENSHOT=1`` the README's picture, ``docs/images/serve.png``, is made again.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from serving import start_serve, stop

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "outputs" / "screenshots"
README_SCREENSHOT = ROOT / "docs" / "images" / "serve.png"

KESH = {"title": "The Kesh Jig", "seed": "7"}  # the tune most tests look at (and the README's picture)
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
BAD_PRIME = "|: d2fd Ad#A |"  # '#' is no ABC: the server refuses it (422 naming prime)
GOOD_PRIME = "|: d2fd AdFA |"

# abcjs's bar types -> folkrnn's BarLine.kind
ABCJS_BARS = {"bar_thin": "|", "bar_thin_thin": "||", "bar_thin_thick": "|]", "bar_thick_thin": "[|",
              "bar_left_repeat": "|:", "bar_right_repeat": ":|", "bar_dbl_repeat": "::"}
FAILED_422 = re.compile(r"^(\S+) - Failed to load resource: the server responded with a status of 422 ")

# every alert/confirm/prompt the page calls is recorded instead of shown (a hostile title must call none)
ALERT_HOOK = """
window.__alerts = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (message) => { window.__alerts.push(name + ": " + String(message)); };
}
"""
# the bytes behind a link, fetched inside the page and sent back as base64
FETCH_BYTES = """
const done = arguments[arguments.length - 1];
fetch(arguments[0]).then(async (response) => {
  const bytes = new Uint8Array(await response.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  done([response.status, response.headers.get("content-type"), btoa(text)]);
}).catch((error) => done([0, String(error), ""]));
"""
# the bar lines abcjs read in the card's tune (its own model of what it drew), and what it drew
DRAWN = """
const card = arguments[0];
const bars = [];
for (const line of card.card.view.visualObj.lines) {
  for (const staff of line.staff || []) {
    for (const voice of staff.voices) {
      for (const e of voice) if (e.el_type === "bar") bars.push([e.type, e.startEnding || "", e.startChar, e.endChar]);
    }
  }
}
const svg = card.querySelector("[data-testid=sheet] svg");
return {bars, drawnBars: svg.querySelectorAll("g.abcjs-bar").length,
        drawnNotes: svg.querySelectorAll("g.abcjs-note").length, width: svg.getBoundingClientRect().width};
"""


def _browser_or_skip(chromium: str = CHROMIUM, chromedriver: str = CHROMEDRIVER) -> None:
    """Skips (or, under CI_REQUIRE_BROWSER=1, fails) when Chromium, its driver or Selenium is missing."""
    missing = [path for path in (chromium, chromedriver) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = (f"no browser to test folkrnn serve's pages with: {', '.join(missing)} missing "
                   "(apt-get install chromium chromium-driver)")
        if os.environ.get("CI_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CI_REQUIRE_BROWSER=1 but {message}", pytrace=False)
        pytest.skip(message)


def test_ci_cannot_skip_the_browser(monkeypatch):
    """Without Chromium the browser tests skip; under CI_REQUIRE_BROWSER=1 they fail."""
    monkeypatch.delenv("CI_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium"):
        _browser_or_skip(chromium="/nonexistent/chromium")
    monkeypatch.setenv("CI_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="CI_REQUIRE_BROWSER=1 but"):
        _browser_or_skip(chromedriver="/nonexistent/chromedriver")


# ---------------------------------------------------------------------------------------------
# the server, the browser, and what the browser did


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``folkrnn serve`` on a free port with a fresh tunebook: its base URL (stopped at the end)."""
    try:
        process, base = start_serve(tmp_path_factory.mktemp("serve-browser"))
    except RuntimeError as error:
        pytest.fail(str(error))
    try:
        yield base
    finally:
        stop(process)


def _viewport(driver, width: int, height: int, mobile: bool = False) -> None:
    """The page's viewport, exactly (a window size would count the browser's own frame)."""
    driver.set_window_size(width, height)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """Headless Chromium with its browser and performance logs on, at 1280 x 900."""
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}",
                 "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.set_script_timeout(60)
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ALERT_HOOK})
        _viewport(browser, 1280, 900)
        yield browser
    finally:
        browser.quit()


class Page:
    """The browser on the server, with every request, response and console message it logged."""

    def __init__(self, driver, base: str) -> None:
        self.driver, self.base = driver, base
        self.requests: list[str] = []  # every URL asked for, in order
        self.responses: list[tuple[str, int]] = []  # (URL, status)
        self.console: list[dict] = []
        self.seen = (0, 0, 0)  # what assert_clean has looked at already
        self.provoked: list = []  # (path, predicate on its query): the 422s a test asked for
        self.kesh_url = ""  # the permalink the page pushed for the Kesh jig
        self.saved: set[str] = set()  # titles saved to the tunebook
        # the browser's own start (its new tab page, chrome://...) is not the page's: leave it, and forget it
        driver.get("about:blank")
        driver.get_log("performance")
        driver.get_log("browser")

    def drain(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
            elif message["method"] == "Network.responseReceived":
                response = message["params"]["response"]
                self.responses.append((response["url"], response["status"]))
        self.console.extend(self.driver.get_log("browser"))

    def fresh(self) -> None:
        """Start a test's window: what came before is not this test's to answer for."""
        self.drain()
        self.seen = (len(self.requests), len(self.responses), len(self.console))

    def provoke_422(self, path: str, predicate) -> None:
        """The test is about to make the page ask for something the server refuses with 422."""
        self.provoked.append((path, predicate))

    def _provoked(self, url: str) -> bool:
        parts = urllib.parse.urlsplit(url)
        if not url.startswith(self.base + "/"):
            return False
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        return any(parts.path == path and predicate(query) for path, predicate in self.provoked)

    def assert_clean(self, since: tuple[int, int, int] | None = None) -> None:
        """Since the test began (or ``since``): every request went to the server (or was data:/blob:),
        no response failed and no console error was logged, but the 422s the tests provoked."""
        self.drain()
        since = self.seen if since is None else since
        requests = self.requests[since[0]:]
        responses = self.responses[since[1]:]
        console = self.console[since[2]:]
        foreign = [url for url in requests if not url.startswith((self.base + "/", "data:", "blob:"))]
        assert not foreign, f"requests to another host than {self.base}: {foreign[:10]}"
        failed = [(url, status) for url, status in responses
                  if status >= 400 and not (status == 422 and self._provoked(url))]
        assert not failed, f"failed requests: {failed[:10]}"
        errors = []
        for entry in console:
            if entry["level"] != "SEVERE":
                continue
            match = FAILED_422.match(entry["message"])
            if match and self._provoked(match.group(1)):
                continue
            errors.append(entry["message"][:400])
        assert not errors, f"console errors: {errors}"


@pytest.fixture(scope="module")
def page_session(driver, server):
    return Page(driver, server)


@pytest.fixture
def page(page_session):
    page_session.fresh()
    return page_session


@pytest.fixture(scope="module")
def kesh_files(tmp_path_factory) -> dict[str, Path]:
    """What ``folkrnn compose --title 'The Kesh Jig' --seed 7 -f abc,mid,musicxml`` writes: suffix -> file."""
    out = tmp_path_factory.mktemp("kesh-cli")
    run = subprocess.run([sys.executable, "-m", "folkrnn", "compose", "--title", KESH["title"], "--seed", KESH["seed"],
                          "-f", "abc,mid,musicxml", "--out", str(out)],
                         cwd=out, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    files = {path.suffix[1:]: path for path in out.iterdir()}
    assert set(files) == {"abc", "mid", "musicxml"}, files
    return files


# ---------------------------------------------------------------------------------------------
# helpers


def wait(driver, timeout: float = 30, poll: float = 0.1):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=poll)


def tid(root, name: str):
    from selenium.webdriver.common.by import By

    return root.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def tids(root, name: str) -> list:
    from selenium.webdriver.common.by import By

    return root.find_elements(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def text_of(driver, element) -> str:
    """An element's textContent, exactly (Selenium's .text trims and folds whitespace)."""
    return driver.execute_script("return arguments[0].textContent", element)


def query_of(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)


def open_composer(page: Page, path: str = "/") -> None:
    from selenium.webdriver.support.ui import Select

    page.driver.get(page.base + path)
    wait(page.driver).until(lambda d: len(Select(tid(d, "rhythm")).options) > 3)


def finished_card(page: Page, timeout: float = 120):
    """The newest tune card once it is done (or failed: then the test fails with its status)."""
    def done(driver):
        cards = tids(driver, "tune-card")
        return cards and cards[0].get_attribute("data-state") in ("done", "error") and cards[0]

    card = wait(page.driver, timeout).until(done)
    assert card.get_attribute("data-state") == "done", tid(card, "tune-status").text
    return card


def compose_in_page(page: Page, *, title: str = "", seed: str | None = None, rhythm: str = ""):
    """Fill the composer's form on a fresh page, press Compose, and return the finished card."""
    from selenium.webdriver.support.ui import Select

    driver = page.driver
    open_composer(page)
    if title:
        tid(driver, "title").send_keys(title)
    if rhythm:
        Select(tid(driver, "rhythm")).select_by_value(rhythm)
    if seed is not None:
        tid(driver, "random-seed").click()
        tid(driver, "seed").send_keys(seed)
    tid(driver, "compose").click()
    return finished_card(page)


def server_error(page: Page, path: str, params: dict) -> str:
    """The message of the server's 422 for path?params, asked directly."""
    url = f"{page.base}{path}?{urllib.parse.urlencode(params)}"
    with pytest.raises(urllib.error.HTTPError) as refusal:
        urllib.request.urlopen(url, timeout=30)
    assert refusal.value.code == 422
    return json.loads(refusal.value.read())["error"]["message"]


@pytest.fixture
def kesh_card(page):
    """The Kesh jig's card on the composer: the one shown already, else composed with the form."""
    driver = page.driver
    cards = tids(driver, "tune-card")
    if (page.kesh_url and driver.current_url == page.kesh_url and cards
            and cards[0].get_attribute("data-state") == "done"
            and query_of("/?" + cards[0].get_attribute("data-query")) == {k: [v] for k, v in KESH.items()}):
        return cards[0]
    card = compose_in_page(page, **KESH)
    page.kesh_url = driver.current_url
    return card


def shoot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


# ---------------------------------------------------------------------------------------------
# the composer


@pytest.mark.slow
def test_composing_with_a_seed_gives_the_abc_folkrnn_compose_writes(page, kesh_files):
    driver = page.driver
    card = compose_in_page(page, **KESH)
    assert text_of(driver, tid(card, "abc")) == kesh_files["abc"].read_text(encoding="utf-8")
    assert tid(card, "tune-title").text == KESH["title"]
    # the page's address is the tune's permalink, pushed: the options, seed included
    url = urllib.parse.urlsplit(driver.current_url)
    assert (url.scheme + "://" + url.netloc, url.path) == (page.base, "/")
    assert query_of(driver.current_url) == {"title": [KESH["title"]], "seed": [KESH["seed"]]}
    assert tid(card, "permalink").get_attribute("href") == driver.current_url
    assert driver.execute_script("return history.length") >= 2  # pushed, not replaced
    page.kesh_url = driver.current_url
    page.assert_clean()


@pytest.mark.slow
def test_the_sheet_draws_every_bar_line_of_the_abc(page, kesh_card):
    from folkrnn.abc import parse

    abc = text_of(page.driver, tid(kesh_card, "abc"))
    tune = parse(abc)
    drawn = page.driver.execute_script(DRAWN, kesh_card)
    assert len(tune.bars) >= 16  # a tune of two 8-bar parts at least, so the count means something
    # what abcjs read: the same bar lines as folkrnn's parser, in order, kinds and endings...
    read = [(ABCJS_BARS.get(kind, kind), ending) for kind, ending, _, _ in drawn["bars"]]
    assert read == [(bar.kind, ",".join(map(str, bar.ending))) for bar in tune.bars]
    # ...each standing on a bar line of the text shown beside the sheet...
    for _, _, start, end in drawn["bars"]:
        assert re.fullmatch(r"\s*(\|\]|\[\||\|\||::|\|:|:\||\|)\s*\d*\s*", abc[start:end]), (start, abc[start:end])
    # ...and all drawn: one bar line group in the SVG for each (not a bar more, none missing)
    assert drawn["drawnBars"] == len(tune.bars)
    # the notes too: one drawn note for each onset (a chord is one)
    assert drawn["drawnNotes"] == len({note.onset for note in tune.notes if not note.grace})
    assert drawn["width"] > 600  # drawn across the card at 1280 px
    page.assert_clean()


@pytest.mark.slow
def test_play_moves_the_cursor_and_stop_stops_it(page, kesh_card):
    from selenium.webdriver.common.by import By

    driver = page.driver
    player = kesh_card.find_element(By.CSS_SELECTOR, "[data-player]")
    cursor_x = "return arguments[0].querySelector('[data-testid=cursor]')?.getAttribute('x1') ?? null"
    tid(kesh_card, "play").click()
    wait(driver, 30).until(lambda d: player.get_attribute("data-player") == "playing")
    xs: list[float] = []

    def moved(d) -> bool:
        x = d.execute_script(cursor_x, kesh_card)
        if x is not None and (not xs or float(x) != xs[-1]):
            xs.append(float(x))
        return len(xs) >= 4

    wait(driver, 20, poll=0.15).until(moved)
    rises = sum(after > before for before, after in zip(xs, xs[1:]))
    assert rises >= len(xs) - 2, xs  # it goes right (once it may wrap to the next line)
    assert driver.execute_script("return arguments[0].querySelectorAll('.sounding').length", kesh_card) >= 1
    tid(kesh_card, "stop").click()
    wait(driver, 5).until(lambda d: player.get_attribute("data-player") == "stopped")
    assert driver.execute_script(cursor_x, kesh_card) is None
    assert driver.execute_script("return arguments[0].querySelectorAll('.sounding').length", kesh_card) == 0
    assert tid(kesh_card, "play").text == "Play" and not tid(kesh_card, "play").get_attribute("disabled")
    # the instrument's samples (a fiddle: violin-mp3), from the server's /static/soundfont/ only
    page.drain()
    samples = [url for url in page.requests[page.seen[0]:] if url.endswith(".mp3") or "soundfont" in url.lower()]
    assert samples, "no instrument sample was asked for"
    assert all(url.startswith(page.base + "/static/soundfont/violin-mp3/") for url in samples), samples
    statuses = [status for url, status in page.responses[page.seen[1]:] if url in samples]
    assert statuses and set(statuses) == {200}, statuses
    page.assert_clean()


@pytest.mark.slow
def test_the_midi_and_musicxml_links_give_folkrnn_composes_files(page, kesh_card, kesh_files):
    import mido
    from music21 import converter

    got = {}
    for name, content_type in (("mid", "audio/midi"), ("musicxml", "application/vnd.recordare.musicxml+xml")):
        href = tid(kesh_card, f"download-{name}").get_attribute("href")
        assert href.startswith(f"{page.base}/api/tune.{name}?") and query_of(href)["seed"] == [KESH["seed"]]
        status, kind, data = page.driver.execute_async_script(FETCH_BYTES, href)
        assert (status, kind.split(";")[0]) == (200, content_type), (status, kind)
        got[name] = base64.b64decode(data)
        assert got[name] == kesh_files[name].read_bytes(), f"{name}: not the bytes folkrnn compose writes"
    midi = mido.MidiFile(file=io.BytesIO(got["mid"]))
    assert midi.length > 0
    assert [m for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0]
    score = converter.parseData(got["musicxml"].decode("utf-8"), format="musicxml")
    assert len(score.flatten().notes) > 0
    assert score.metadata.bestTitle == KESH["title"]
    page.assert_clean()


@pytest.mark.slow
def test_reloading_the_permalink_gives_the_same_tune(page, kesh_card, kesh_files):
    driver = page.driver
    pushed = page.kesh_url
    shown = text_of(driver, tid(kesh_card, "abc"))
    driver.get(pushed)
    card = finished_card(page)
    assert text_of(driver, tid(card, "abc")) == shown == kesh_files["abc"].read_text(encoding="utf-8")
    assert len(tids(driver, "tune-card")) == 1
    assert driver.current_url == pushed
    # the form holds the tune's options again
    assert tid(driver, "title").get_attribute("value") == KESH["title"]
    assert tid(driver, "seed").get_attribute("value") == KESH["seed"]
    assert not tid(driver, "random-seed").is_selected()
    page.assert_clean()


@pytest.mark.slow
def test_a_bad_first_phrase_or_field_shows_the_servers_message_inline(page):
    driver = page.driver
    open_composer(page)
    # typed a key at a time, the page may ask about a prefix of the bad phrase too
    page.provoke_422("/api/prime", lambda q: BAD_PRIME.startswith(q.get("prime", [""])[0]))
    expected = server_error(page, "/api/prime", {"prime": BAD_PRIME})
    prime = tid(driver, "prime")
    prime.send_keys(BAD_PRIME)
    wait(driver).until(lambda d: tid(d, "prime-error").text == expected)
    assert prime.get_attribute("aria-invalid") == "true"
    assert tid(driver, "prime-status").text == ""
    prime.clear()
    prime.send_keys(GOOD_PRIME)
    wait(driver).until(lambda d: tid(d, "prime-error").text == "" and tid(d, "prime-status").text.startswith("\u2713"))
    assert prime.get_attribute("aria-invalid") is None
    # a field the server refuses when composing: its message by the field, and no tune card
    page.provoke_422("/api/compose", lambda q: q.get("temperature") == ["0"])
    expected = server_error(page, "/api/compose", {"prime": GOOD_PRIME, "temperature": "0"})
    tid(driver, "temperature").send_keys("0")
    tid(driver, "compose").click()
    wait(driver).until(lambda d: d.find_element("css selector", '[data-error-for="temperature"]').text == expected)
    assert tid(driver, "temperature").get_attribute("aria-invalid") == "true"
    assert not tids(driver, "tune-card")
    wait(driver).until(lambda d: tid(d, "compose").is_enabled())
    page.assert_clean()


@pytest.mark.slow
def test_a_hostile_title_is_shown_as_text(page):
    from selenium.webdriver.common.by import By

    driver = page.driver
    card = compose_in_page(page, title=XSS, seed="8", rhythm="reel")
    assert tid(card, "tune-title").text == XSS
    assert driver.execute_script("return arguments[0].querySelector('svg .abcjs-title')?.textContent", card) == XSS
    assert f"\nT:{XSS}\n" in text_of(driver, tid(card, "abc"))
    assert query_of(driver.current_url) == {"title": [XSS], "rhythm": ["reel"], "seed": ["8"]}
    tid(card, "save").click()
    wait(driver).until(lambda d: tid(card, "save").get_attribute("data-saved") == "true")
    page.saved.add(XSS)
    assert not driver.find_elements(By.CSS_SELECTOR, "img, [onerror], script:not([src])")
    assert driver.execute_script("return window.__alerts") == []
    page.assert_clean()


@pytest.mark.slow
def test_a_saved_tune_is_in_the_tunebook_and_found_by_its_title(page, kesh_card):
    from selenium.webdriver.common.by import By

    driver = page.driver
    tid(kesh_card, "save").click()
    wait(driver).until(lambda d: tid(kesh_card, "save").get_attribute("data-saved") == "true")
    page.saved.add(KESH["title"])
    driver.get(page.base + "/tunebook")

    def titles(d) -> list[str]:
        return d.execute_script("return [...document.querySelectorAll('[data-testid=tunebook-entry] "
                                "[data-testid=open]')].map((a) => a.textContent)")

    wait(driver).until(lambda d: sorted(titles(d)) == sorted(page.saved))
    entry = next(e for e in tids(driver, "tunebook-entry") if tid(e, "open").text == KESH["title"])
    assert query_of(tid(entry, "open").get_attribute("href")) == {k: [v] for k, v in KESH.items()}
    assert "jig" in entry.text and "seed 7" in entry.text
    if XSS in page.saved:  # the hostile title is text here too
        assert not driver.find_elements(By.CSS_SELECTOR, "img, [onerror], script:not([src])")
        assert driver.execute_script("return window.__alerts") == []
    search = tid(driver, "tunebook-search")
    search.send_keys("kesh")
    wait(driver).until(lambda d: titles(d) == [KESH["title"]] and tid(d, "tunebook-count").text == "1 tune matches")
    assert query_of(driver.current_url) == {"q": ["kesh"]}
    search.send_keys(" zzz")
    wait(driver).until(lambda d: titles(d) == [] and tid(d, "tunebook-count").text == "No saved tune matches.")
    page.assert_clean()


@pytest.mark.slow
def test_screenshots(page, kesh_card):
    """The composer with a tune and the tunebook at 1280 x 900 and 390 x 844, in outputs/screenshots/;
    with FOLKRNN_UPDATE_SCREENSHOT=1, the README's picture too."""
    from selenium.webdriver.common.by import By

    driver = page.driver
    url = page.kesh_url
    try:
        driver.execute_script("window.scrollTo(0, 0); document.getElementById('compose-form').scrollTop = 0; "
                              "document.activeElement?.blur()")
        shoot(driver, "composer-1280")
        if os.environ.get("FOLKRNN_UPDATE_SCREENSHOT") == "1":
            # the header, the form and the tune card down to its player (not the ABC text under it),
            # without the window's scrollbar
            driver.execute_script("document.documentElement.style.scrollbarWidth = 'none'")
            bottom = driver.execute_script(
                "const box = (s) => arguments[0].querySelector(s).getBoundingClientRect();"
                "return (box('[data-player]').bottom + box('.abc-box').top) / 2", kesh_card)
            height = min(900, round(bottom))
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}})
            README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            README_SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
            driver.execute_script("document.documentElement.style.scrollbarWidth = ''")
        if tid(kesh_card, "save").get_attribute("data-saved") != "true":  # the tunebook's screenshots show it
            tid(kesh_card, "save").click()
            wait(driver).until(lambda d: tid(kesh_card, "save").get_attribute("data-saved") == "true")
        driver.get(page.base + "/tunebook")
        wait(driver).until(lambda d: tids(d, "tunebook-entry"))
        entry = next(e for e in tids(driver, "tunebook-entry") if tid(e, "open").text == KESH["title"])
        tid(entry, "show").click()
        wait(driver).until(lambda d: entry.find_elements(By.CSS_SELECTOR, ".sheet svg g.abcjs-bar"))
        shoot(driver, "tunebook-1280")

        _viewport(driver, 390, 844, mobile=True)
        driver.get(url)
        card = finished_card(page)
        # on a phone the form is above the tunes: the page brings the tune up by itself
        wait(driver, 10).until(lambda d: d.execute_script(
            "return Math.abs(arguments[0].getBoundingClientRect().top) < 2", card))
        widths = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the composer scrolls sideways at 390 px: {widths}"
        assert driver.execute_script("return arguments[0].querySelector('svg').getBoundingClientRect().right",
                                     card) <= 390
        shoot(driver, "composer-390")
        driver.get(page.base + "/tunebook")
        wait(driver).until(lambda d: tids(d, "tunebook-entry"))
        entry = next(e for e in tids(driver, "tunebook-entry") if tid(e, "open").text == KESH["title"])
        tid(entry, "show").click()
        wait(driver).until(lambda d: entry.find_elements(By.CSS_SELECTOR, ".sheet svg g.abcjs-bar"))
        widths = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"the tunebook scrolls sideways at 390 px: {widths}"
        shoot(driver, "tunebook-390")
    finally:
        _viewport(driver, 1280, 900)
    page.assert_clean()


@pytest.mark.slow
def test_all_along_no_other_host_and_no_console_error(page):
    """Over every test above: each request the browser made went to the server (or was data:/blob:),
    and the console holds no error but the 422s the tests provoked on purpose."""
    if not page.requests:  # run alone: look at the composer at least
        open_composer(page)
        page.drain()
    assert page.requests, "the performance log recorded no request"
    page.assert_clean(since=(0, 0, 0))
