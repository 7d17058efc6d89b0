/* folkrnn serve: the composer page (/). docs/serve.md is the API it speaks.
   The form -> GET /api/compose?<query>, read as server-sent events; each tune is a card (newest
   first) with its sheet, ABC, player, downloads and a save button; the page's address is the
   shown tune's permalink (/?<query with seed>). */
"use strict";

(() => {
  const {el, role, fromTemplate, errorOf, getJSON, choices, fillSelect, setSelect, fillInstruments,
    instrumentPrograms, rhythmLabel, Player, TuneView} = folkrnn;

  const FIELDS = ["title", "rhythm", "meter", "mode", "key", "form", "part_bars", "seed", "temperature",
    "top_k", "top_p", "strategy", "beam_width", "prime", "tempo", "instrument"];
  // the dances a session plays most first; the rest as the server lists them
  const RHYTHM_ORDER = ["reel", "jig", "slipjig", "hornpipe", "polka", "slide", "waltz", "march", "strathspey",
    "barndance", "mazurka", "air", "song", "other", "any"];
  const NARROW = window.matchMedia("(max-width: 820px)");
  const FORMAT_LABELS = {abc: "ABC", mid: "MIDI", musicxml: "MusicXML", svg: "SVG"};

  const form = document.getElementById("compose-form");
  const field = (name) => form.elements.namedItem(name);
  const seedInput = document.getElementById("f-seed");
  const randomSeed = document.getElementById("f-random");
  const primeInput = document.getElementById("f-prime");
  const primeError = document.getElementById("prime-error");
  const primeStatus = document.getElementById("prime-status");
  const composeButton = form.querySelector("[data-testid=compose]");
  const tunesBox = document.getElementById("tunes");
  const empty = document.getElementById("empty");

  let opts = {};
  let programs = {};
  let formats = ["abc", "mid", "musicxml", "svg"];
  const cache = new Map(); // query -> the tune event's data
  let composing = null; // {controller, card}

  // ---------------------------------------------------------------------------------------------
  // The form

  async function loadOptions() {
    try {
      opts = await folkrnn.options();
    } catch (error) {
      showFormError(`Could not read the composer's options: ${error.message || error}`);
      opts = {};
    }
    const defaults = opts.defaults || {};
    const order = (c) => {
      const at = RHYTHM_ORDER.indexOf(c.value);
      return at < 0 ? RHYTHM_ORDER.length : at;
    };
    const rhythms = choices(opts.rhythms).map((c) => ({value: c.value, label: rhythmLabel(c.label)}))
      .sort((a, b) => order(a) - order(b));
    for (const kind of ["dance", "any"]) {
      if (!rhythms.some((c) => c.value === kind)) rhythms.push({value: kind, label: rhythmLabel(kind)});
    }
    fillSelect(field("rhythm"), rhythms, "model's pick");
    fillSelect(field("meter"), choices(opts.meters), "the dance's");
    fillSelect(field("mode"), choices(opts.modes), "model's pick");
    fillSelect(field("form"), choices(opts.forms), "the dance's");
    fillSelect(field("strategy"), choices(opts.strategies).length ? choices(opts.strategies)
      : choices(["sample", "greedy", "beam"]), "default");
    fillInstruments(field("instrument"), opts, "default");
    programs = instrumentPrograms(opts);
    if (Array.isArray(opts.formats) && opts.formats.length) {
      formats = choices(opts.formats).map((c) => c.value).filter((f) => f in FORMAT_LABELS);
    }
    for (const name of ["temperature", "top_k", "top_p", "beam_width"]) {
      if (defaults[name] !== undefined && defaults[name] !== null) field(name).placeholder = String(defaults[name]);
    }
    if (defaults.top_k === 0) field("top_k").placeholder = "0 (off)";
    const limits = opts.limits || {};
    for (const name of ["temperature", "top_k", "top_p", "beam_width", "tempo"]) {
      const limit = limits[name];
      if (typeof limit === "number") {
        field(name).max = String(limit);
      } else if (Array.isArray(limit) && limit.length === 2) {
        if (name !== "temperature" && name !== "top_p") field(name).min = String(limit[0]);
        field(name).max = String(limit[1]);
      } else if (limit && typeof limit === "object") {
        if (limit.max !== undefined) field(name).max = String(limit.max);
      }
    }
    const model = opts.model && (typeof opts.model === "object" ? opts.model.name || opts.model.identity : opts.model);
    document.getElementById("model-name").textContent = model ? `model: ${model}` : "folkrnn";
  }

  function showBeam() {
    document.getElementById("beam-field").hidden = field("strategy").value !== "beam";
  }

  function showSeed() {
    seedInput.disabled = randomSeed.checked;
    if (!randomSeed.checked && !seedInput.value) seedInput.focus();
  }

  /** The form -> the query string (empty fields left out; the seed only when not random). */
  function formQuery() {
    const params = new URLSearchParams();
    for (const name of FIELDS) {
      if (name === "seed" && randomSeed.checked) continue;
      if (name === "beam_width" && field("strategy").value !== "beam") continue;
      const value = field(name).value.trim();
      if (name === "prime" ? field(name).value.trim() !== "" : value !== "") {
        params.set(name, name === "prime" ? field(name).value : value);
      }
    }
    return params.toString();
  }

  /** A query string -> the form (a permalink, back and forward). */
  function fillForm(query) {
    const params = new URLSearchParams(query);
    for (const name of FIELDS) {
      const input = field(name);
      const value = params.get(name) ?? "";
      if (input.tagName === "SELECT") setSelect(input, value);
      else input.value = value;
    }
    randomSeed.checked = !params.get("seed");
    showSeed();
    showBeam();
    checkPrimeSoon(0);
  }

  function clearErrors() {
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  }

  function showFormError(message) {
    form.querySelector(".form-error").textContent = message;
  }

  /** A refusal {field, message}: next to its field, or under the form. */
  function showFieldError(error) {
    const name = error.field && FIELDS.includes(error.field) ? error.field : "";
    const target = name ? form.querySelector(`[data-error-for="${name}"]`) : null;
    if (!target) {
      showFormError(error.field ? `${error.field}: ${error.message}` : error.message);
      return;
    }
    target.textContent = error.message;
    const input = field(name);
    input.setAttribute("aria-invalid", "true");
    input.closest("details")?.setAttribute("open", "");
    if (name === "seed" && randomSeed.checked) {
      randomSeed.checked = false;
      showSeed();
    }
    input.focus({preventScroll: true});
    input.scrollIntoView({block: "center", behavior: "smooth"});
  }

  // the first phrase, checked as it is typed
  let primeTimer = 0;
  let primeController = null;
  function checkPrimeSoon(delay = 350) {
    clearTimeout(primeTimer);
    primeTimer = setTimeout(checkPrime, delay);
  }

  async function checkPrime() {
    const prime = primeInput.value;
    if (primeController) primeController.abort();
    if (!prime.trim()) {
      primeError.textContent = "";
      primeStatus.textContent = "";
      primeInput.removeAttribute("aria-invalid");
      return;
    }
    primeController = new AbortController();
    const params = new URLSearchParams({prime});
    for (const name of ["key", "mode", "rhythm", "meter"]) {
      const value = field(name).value.trim();
      if (value) params.set(name, value);
    }
    try {
      const response = await fetch(`/api/prime?${params}`, {signal: primeController.signal});
      if (response.ok) {
        const body = await response.json();
        primeError.textContent = "";
        primeInput.removeAttribute("aria-invalid");
        const n = body.tokens;
        primeStatus.textContent = Number.isInteger(n) ? `\u2713 ${n} token${n === 1 ? "" : "s"}: the model reads it` : "\u2713";
      } else {
        const error = await errorOf(response);
        primeStatus.textContent = "";
        primeError.textContent = error.message;
        primeInput.setAttribute("aria-invalid", "true");
      }
    } catch (error) {
      if (error.name !== "AbortError") primeStatus.textContent = "";
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Composing: the event stream

  /** Read a text/event-stream body: calls onEvent(name, data) for each event. */
  async function readEvents(response, onEvent) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer = (buffer + value).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const key = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? "" : line.slice(colon + 1);
          if (text.startsWith(" ")) text = text.slice(1);
          if (key === "event") name = text;
          else if (key === "data") data.push(text);
        }
        if (!data.length) continue;
        let parsed;
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch (_) {
          parsed = {message: data.join("\n")};
        }
        if (onEvent(name, parsed) === false) {
          reader.cancel();
          return;
        }
      }
    }
  }

  /** Compose the tune query names; history: "push" (a new tune), "replace" (the page's own address). */
  async function compose(query, history = "push") {
    if (composing) {
      composing.controller.abort();
      removeCard(composing.card);
      composing = null;
    }
    clearErrors();
    const controller = new AbortController();
    composeButton.disabled = true;
    composeButton.textContent = "Composing\u2026";
    let response;
    try {
      response = await fetch(`/api/compose?${query}`, {signal: controller.signal, headers: {Accept: "text/event-stream"}});
    } catch (error) {
      if (error.name !== "AbortError") showFormError(`The composer cannot be reached: ${error.message}`);
      composeDone();
      return;
    }
    if (!response.ok) {
      showFieldError(await errorOf(response));
      composeDone();
      return;
    }
    const card = makeCard();
    composing = {controller, card};
    if (NARROW.matches) card.node.scrollIntoView({block: "start", behavior: "smooth"});
    let finished = false;
    let pending = null;
    let drawScheduled = false;
    const drawPartial = () => {
      drawScheduled = false;
      if (pending !== null && !finished) card.view.show(pending, {interactive: false});
    };
    try {
      await readEvents(response, (name, data) => {
        if (name === "start") {
          card.query = data.query || query;
          card.node.dataset.query = card.query;
          setStatus(card, `Writing with seed ${data.seed}\u2026`);
        } else if (name === "progress") {
          pending = String(data.abc || "");
          setStatus(card, `Writing\u2026 ${data.tokens ?? ""} tokens`);
          if (!drawScheduled) {
            drawScheduled = true;
            requestAnimationFrame(drawPartial);
          }
        } else if (name === "retry") {
          pending = null;
          card.view.sheet.replaceChildren();
          card.view.text.textContent = "";
          setStatus(card, `Seed ${data.seed} could not finish a tune (${data.reason || "no reason given"}); trying the next\u2026`);
        } else if (name === "tune") {
          finished = true;
          cache.set(data.query, data);
          showTune(card, data);
          // on a phone the scroll to the new card stopped short (it was empty then, at the page's
          // end): now that it holds the tune, bring it up, unless it is already in view
          if (NARROW.matches && card.node.getBoundingClientRect().top > window.innerHeight * 0.4) {
            card.node.scrollIntoView({block: "start", behavior: "smooth"});
          }
          if (history === "push") window.history.pushState({query: data.query}, "", `/?${data.query}`);
          else if (history === "replace") window.history.replaceState({query: data.query}, "", `/?${data.query}`);
          return false;
        } else if (name === "error") {
          finished = true;
          showCardError(card, data.message || "No tune could be written.");
          return false;
        }
        return true;
      });
      if (!finished) showCardError(card, "The connection closed before the tune was finished.");
    } catch (error) {
      if (error.name === "AbortError") return;
      if (!finished) showCardError(card, `The connection broke: ${error.message}`);
    } finally {
      if (composing && composing.card === card) {
        composing = null;
        composeDone();
      }
    }
  }

  function composeDone() {
    composeButton.disabled = false;
    composeButton.textContent = "Compose";
  }

  // ---------------------------------------------------------------------------------------------
  // Tune cards

  function makeCard() {
    const node = fromTemplate("tune-card");
    const view = new TuneView(role(node, "sheet"), role(node, "abc"));
    const instrument = role(node, "instrument");
    fillInstruments(instrument, opts);
    const card = {node, view, query: "", data: null};
    card.player = new Player(view, {
      play: role(node, "play"), stop: role(node, "stop"), tempo: role(node, "tempo"),
      tempoLabel: role(node, "tempo-label"), instrument, status: role(node, "player-status"),
    }, programs);
    role(node, "remove").addEventListener("click", () => {
      if (composing && composing.card === card) {
        composing.controller.abort();
        composing = null;
        composeDone();
      }
      removeCard(card);
    });
    role(node, "save").addEventListener("click", () => save(card));
    node.card = card;
    tunesBox.prepend(node);
    empty.hidden = true;
    return card;
  }

  function removeCard(card) {
    card.player.stop();
    card.view.forget();
    card.node.remove();
    empty.hidden = tunesBox.children.length > 0;
  }

  function setStatus(card, text) {
    role(card.node, "status").textContent = text;
  }

  function showCardError(card, message) {
    card.node.dataset.state = "error";
    role(card.node, "title").textContent = "No tune this time";
    setStatus(card, message);
    role(card.node, "status").classList.add("error");
  }

  /** The finished tune: sheet, ABC, player, metadata, downloads. */
  function showTune(card, data) {
    const {node, view} = card;
    card.data = data;
    card.query = data.query;
    node.dataset.query = data.query;
    node.dataset.seed = String(data.seed);
    role(node, "title").textContent = data.title || "Untitled";
    const params = new URLSearchParams(data.query);
    view.show(String(data.abc || ""));
    setSelectValue(role(node, "instrument"), params.get("instrument") || "fiddle");
    card.player.reset(Number(params.get("tempo")) || 0);
    setStatus(card, "");
    fillMeta(card, data, params);
    const warnings = role(node, "warnings");
    warnings.replaceChildren(...(data.warnings || []).map((w) => el("li", {}, String(w))));
    const downloads = role(node, "downloads");
    downloads.replaceChildren("Download:");
    for (const format of formats) {
      downloads.append(" ", el("a", {
        class: "button small", href: `/api/tune.${format}?${data.query}`, download: "",
        dataset: {testid: `download-${format}`}, title: `Download the tune as ${FORMAT_LABELS[format]}`,
      }, FORMAT_LABELS[format]));
    }
    role(node, "permalink").href = `/?${data.query}`;
    role(node, "actions").hidden = false;
    node.dataset.state = "done";
  }

  function setSelectValue(select, value) {
    if ([...select.options].some((o) => o.value === value)) select.value = value;
  }

  function fillMeta(card, data, params) {
    const meta = role(card.node, "meta");
    const summary = data.summary || {};
    const rows = [];
    const add = (term, value) => {
      if (value !== undefined && value !== null && value !== "") rows.push([term, String(value)]);
    };
    add("Seed", data.seed);
    add("Rhythm", summary.rhythm && rhythmLabel(summary.rhythm));
    add("Meter", summary.meter);
    add("Key", summary.key);
    const form = summary.form;
    add("Form", form && typeof form === "object" ? form.label || form.name : form);
    add("Tokens", summary.tokens);
    const options = [];
    for (const [name, value] of params) {
      if (!["seed", "title"].includes(name)) options.push(`${name.replace("_", "-")} ${value}`);
    }
    add("Options", options.join(" \u00b7 ") || "the model's choice");
    if (summary.nearest && typeof summary.nearest === "object" && summary.nearest.title) {
      add("Nearest known tune", summary.nearest.title);
    }
    if (Array.isArray(summary.retried) && summary.retried.length) {
      add("Retried", summary.retried.map((r) => `seed ${r.seed}: ${r.reason}`).join("; "));
    }
    meta.replaceChildren();
    for (const [term, value] of rows) meta.append(el("div", {}, el("dt", {}, term), el("dd", {}, value)));
  }

  async function save(card) {
    const button = role(card.node, "save");
    button.disabled = true;
    button.textContent = "Saving\u2026";
    try {
      const body = await getJSON("/api/tunebook", {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({query: card.query}),
      });
      button.textContent = "Saved \u2713";
      button.dataset.saved = "true";
      button.title = `In your tunebook (#${body && body.id})`;
      card.node.dataset.saved = String(body && body.id);
    } catch (error) {
      button.disabled = false;
      button.textContent = "Save to tunebook";
      setStatus(card, `Not saved: ${error.message || error}`);
    }
  }

  /** Show the tune of query again: its card, else from the cache, else compose it. */
  function showQuery(query, history) {
    const existing = [...tunesBox.children].find((node) => node.dataset.query === query);
    if (existing) {
      existing.scrollIntoView({block: "start", behavior: "smooth"});
      existing.classList.remove("flash");
      void existing.offsetWidth;
      existing.classList.add("flash");
      return;
    }
    const data = cache.get(query);
    if (data) {
      const card = makeCard();
      showTune(card, data);
      return;
    }
    compose(query, history);
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors();
    if (!randomSeed.checked && !/^\d{1,19}$/.test(seedInput.value.trim())) {
      showFieldError({field: "seed", message: "A seed is a whole number from 0 to 9223372036854775807 (or tick random)."});
      return;
    }
    compose(formQuery(), "push");
  });
  randomSeed.addEventListener("change", showSeed);
  field("strategy").addEventListener("change", showBeam);
  primeInput.addEventListener("input", () => checkPrimeSoon());
  for (const name of ["key", "mode", "rhythm", "meter"]) {
    field(name).addEventListener("change", () => { if (primeInput.value.trim()) checkPrimeSoon(0); });
  }
  for (const name of FIELDS) {
    field(name).addEventListener("input", () => {
      const error = form.querySelector(`[data-error-for="${name}"]`);
      if (error && name !== "prime") error.textContent = "";
      if (name !== "prime") field(name).removeAttribute("aria-invalid");
    });
  }

  window.addEventListener("popstate", () => {
    const query = window.location.search.slice(1);
    if (!query) return;
    fillForm(query);
    showQuery(query, "none");
  });

  if (NARROW.matches) {
    // on a phone the tune matters more than the knobs: the sampling and playing groups start closed
    for (const details of form.querySelectorAll("details.more")) details.removeAttribute("open");
  }

  loadOptions().then(() => {
    showBeam();
    showSeed();
    const query = window.location.search.slice(1);
    if (query) {
      fillForm(query);
      compose(query, "replace");
    }
  });
})();
