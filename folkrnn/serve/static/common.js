/* folkrnn serve: what the composer and the tunebook share.
   A tune view (sheet music drawn by abcjs, the ABC text, each highlighting the other), its player
   (abcjs's synth with the samples in /static/soundfont/, a cursor that follows the notes), the
   instruments, and small DOM and fetch helpers. Plain ES2020, no build step. Every text from the
   server or the person goes in with textContent, never as HTML. */
"use strict";

const folkrnn = (() => {
  const SOUNDFONT_URL = "/static/soundfont/";

  // ---------------------------------------------------------------------------------------------
  // DOM and fetch helpers

  /** An element: el("a", {href: "/", class: "x", dataset: {testid: "y"}}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** The first element under root with data-role="name". */
  const role = (root, name) => root.querySelector(`[data-role="${name}"]`);

  /** A clone of <template id="...">'s first element. */
  function fromTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  /** The error a 4xx/5xx JSON body names: {field, message}. */
  async function errorOf(response) {
    let field = null;
    let message = `${response.status} ${response.statusText}`.trim();
    try {
      const body = await response.json();
      if (body && body.error) {
        field = body.error.field || null;
        if (body.error.message) message = String(body.error.message);
      }
    } catch (_) { /* not JSON */ }
    if (response.status === 429) message = `The composer is busy: ${message}. Try again in a moment.`;
    return {status: response.status, field, message};
  }

  /** fetch, then the JSON body; throws {status, field, message} on an error status. */
  async function getJSON(url, init) {
    const response = await fetch(url, init);
    if (!response.ok) throw await errorOf(response);
    if (response.status === 204) return null;
    return response.json();
  }

  let optionsPromise = null;
  /** GET /api/options, once. */
  function options() {
    if (!optionsPromise) optionsPromise = getJSON("/api/options");
    return optionsPromise;
  }

  /** A list of choices as [{value, label}]: from strings, {name|value, label} objects or a dict. */
  function choices(list) {
    if (!list) return [];
    if (!Array.isArray(list)) return Object.keys(list).map((value) => ({value, label: value}));
    return list.map((item) => {
      if (item !== null && typeof item === "object") {
        // modes come as {code: "dor", name: "dorian"}: the code is what queries and the tunebook hold
        const value = String(item.code ?? item.name ?? item.value ?? item.id ?? "");
        return {value, label: String(item.label ?? item.name ?? item.title ?? value), item};
      }
      return {value: String(item), label: String(item)};
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Instruments: folkrnn's names -> General MIDI programs -> the samples shipped

  // folkrnn.tables.INSTRUMENTS (name -> 0-based GM program), for an /api/options that lists names only
  const PROGRAMS = {
    fiddle: 40, violin: 40, viola: 41, cello: 42, whistle: 78, flute: 73, "concert-flute": 73, piccolo: 72,
    recorder: 74, "uilleann-pipes": 109, bagpipe: 109, accordion: 21, concertina: 23, harmonica: 22,
    mandolin: 25, banjo: 105, bouzouki: 25, guitar: 25, harp: 46, dulcimer: 15, piano: 0, harpsichord: 6,
    organ: 19, clarinet: 71, oboe: 68,
  };
  // the programs with samples in /static/soundfont/ (tools/make_soundfont.py)
  const SHIPPED = new Set([0, 21, 25, 40, 73, 78, 109]);
  // the nearest shipped sound for the others
  const NEAREST = {
    41: 40, 42: 40, 43: 40, 44: 40, 45: 25, 46: 25, 47: 0, // strings
    72: 73, 74: 78, 75: 73, 76: 78, 77: 73, 79: 78, // pipes and flutes
    68: 73, 69: 73, 70: 73, 71: 73, // oboe, horn, bassoon, clarinet
    16: 21, 17: 21, 18: 21, 19: 21, 20: 21, 22: 21, 23: 21, // organs, harmonica, concertina
    104: 25, 105: 25, 106: 25, 107: 25, 108: 0, 110: 40, 111: 109, // sitar, banjo, shamisen, koto ...
  };

  /** The GM program abcjs plays an instrument (a folkrnn name or a program number) with. */
  function programFor(instrument, known) {
    let program = Number.isInteger(instrument) ? instrument : undefined;
    if (program === undefined && known && known[instrument] !== undefined) program = known[instrument];
    if (program === undefined) program = PROGRAMS[String(instrument || "").toLowerCase()];
    if (program === undefined) program = 40;
    if (SHIPPED.has(program)) return program;
    if (NEAREST[program] !== undefined) return NEAREST[program];
    if (program < 16) return 0; // pianos, chromatic percussion
    if (program < 24) return 21; // organs, reeds
    if (program < 40) return 25; // guitars, basses
    if (program < 56) return 40; // strings, ensembles
    if (program < 80) return 73; // brass, reeds, pipes
    return 40;
  }

  /** {name: program} from /api/options' instruments (objects with a program, or names). */
  function instrumentPrograms(opts) {
    const known = {...PROGRAMS};
    for (const choice of choices(opts && opts.instruments)) {
      const item = choice.item;
      if (item && Number.isInteger(item.program)) known[choice.value] = item.program;
    }
    return known;
  }

  /** Fill a <select> with [{value, label}], keeping its current value where it can. */
  function fillSelect(select, list, first) {
    const keep = select.value;
    select.replaceChildren();
    if (first) select.append(el("option", {value: ""}, first));
    for (const {value, label} of list) select.append(el("option", {value}, label));
    setSelect(select, keep);
  }

  /** Set a <select> to value, adding the option when it is not there (a permalink's meter). */
  function setSelect(select, value) {
    value = value == null ? "" : String(value);
    if (value !== "" && ![...select.options].some((option) => option.value === value)) {
      select.append(el("option", {value}, value));
    }
    select.value = value;
  }

  // ---------------------------------------------------------------------------------------------
  // Audio: one AudioContext, one tune playing at a time

  let audioContext = null;
  let playing = null; // the Player that sounds

  /** The page's AudioContext, made (and resumed) inside a click, as browsers ask. */
  function audio() {
    if (!audioContext) {
      const AudioContext = window.AudioContext || window.webkitAudioContext;
      audioContext = new AudioContext();
      ABCJS.synth.registerAudioContext(audioContext);
    }
    if (audioContext.state === "suspended") audioContext.resume();
    return audioContext;
  }

  /** The beat folkrnn's tempo counts (serve.md: a dotted quarter in 6/8, 9/8, 12/8, else a quarter). */
  function folkBeat(visualObj) {
    const meter = visualObj.getMeterFraction();
    return meter.den === 8 && meter.num % 3 === 0 && meter.num > 3 ? 3 / 8 : 1 / 4;
  }

  class Player {
    /** view: the TuneView it plays; controls: {play, stop, tempo, tempoLabel, instrument, status}. */
    constructor(view, controls, instrumentPrograms) {
      this.view = view;
      view.player = this;
      this.controls = controls;
      this.known = instrumentPrograms || PROGRAMS;
      this.synth = null;
      this.timer = null;
      this.state = "stopped"; // stopped | loading | playing | paused
      this.primed = null; // "program:bpm" the synth was primed for
      this.cursor = null;
      this.lit = [];
      controls.play.addEventListener("click", () => this.toggle());
      controls.stop.addEventListener("click", () => this.stop());
      controls.tempo.addEventListener("input", () => this.showTempo());
      controls.tempo.addEventListener("change", () => this.restartIfPlaying());
      controls.instrument.addEventListener("change", () => this.restartIfPlaying());
      this.setState("stopped");
    }

    /** A new tune drawn: the tempo of its Q: line, and stop. */
    reset(defaultTempo) {
      this.stop();
      this.primed = null;
      const visualObj = this.view.visualObj;
      if (!visualObj) return;
      const bpm = Math.round(visualObj.getBpm() * visualObj.getBeatLength() / folkBeat(visualObj));
      this.controls.tempo.value = String(defaultTempo || bpm);
      this.showTempo();
    }

    showTempo() {
      const visualObj = this.view.visualObj;
      const note = visualObj && folkBeat(visualObj) === 3 / 8 ? "\u2669. = " : "\u2669 = ";
      this.controls.tempoLabel.textContent = note + this.controls.tempo.value;
    }

    /** The tempo asked for, in abcjs's beats a minute (a half note in 2/2). */
    abcjsBpm() {
      const visualObj = this.view.visualObj;
      const bpm = Number(this.controls.tempo.value) || 120;
      return Math.max(1, Math.round(bpm * folkBeat(visualObj) / visualObj.getBeatLength()));
    }

    program() {
      return programFor(this.controls.instrument.value || "fiddle", this.known);
    }

    setState(state, message) {
      this.state = state;
      const {play, stop, status} = this.controls;
      play.textContent = state === "playing" ? "Pause" : state === "loading" ? "Loading\u2026" : "Play";
      play.setAttribute("aria-pressed", state === "playing" ? "true" : "false");
      play.disabled = state === "loading" || !this.view.visualObj;
      stop.disabled = state === "stopped";
      play.closest("[data-player]")?.setAttribute("data-player", state);
      if (status) status.textContent = message || "";
    }

    toggle() {
      if (this.state === "playing") this.pause();
      else if (this.state === "paused") this.resume();
      else if (this.state === "stopped") this.play();
    }

    async play() {
      const visualObj = this.view.visualObj;
      if (!visualObj) return;
      if (playing && playing !== this) playing.stop();
      playing = this;
      const context = audio(); // inside the click
      this.setState("loading", "");
      const bpm = this.abcjsBpm();
      const program = this.program();
      try {
        const key = `${program}:${bpm}`;
        if (!this.synth || this.primed !== key) {
          this.synth = new ABCJS.synth.CreateSynth();
          await this.synth.init({
            audioContext: context,
            visualObj,
            millisecondsPerMeasure: visualObj.millisecondsPerMeasure(bpm),
            options: {soundFontUrl: SOUNDFONT_URL, program, qpm: bpm, chordsOff: true},
          });
          await this.synth.prime();
          this.primed = key;
        }
        if (playing !== this || this.state !== "loading") return; // stopped while loading
        this.timer = new ABCJS.TimingCallbacks(visualObj, {
          qpm: bpm,
          beatSubdivisions: 4,
          eventCallback: (event) => this.onEvent(event),
        });
        await context.resume();
        this.synth.start();
        this.timer.start();
        this.setState("playing");
      } catch (error) {
        console.warn("playback failed", error);
        this.setState("stopped", "This browser could not play the tune: " + (error && error.message || error));
        if (playing === this) playing = null;
      }
    }

    pause() {
      if (this.state !== "playing") return;
      this.synth.pause();
      this.timer.pause();
      this.setState("paused");
    }

    resume() {
      if (this.state !== "paused") return;
      if (playing && playing !== this) playing.stop();
      playing = this;
      audio();
      this.synth.resume();
      this.timer.start();
      this.setState("playing");
    }

    stop() {
      if (this.synth && (this.state === "playing" || this.state === "paused")) this.synth.stop();
      if (this.timer) {
        this.timer.stop();
        this.timer = null;
      }
      this.light([]);
      if (this.cursor) {
        this.cursor.remove();
        this.cursor = null;
      }
      if (playing === this) playing = null;
      this.setState("stopped");
    }

    restartIfPlaying() {
      if (this.state === "playing" || this.state === "paused") {
        this.stop();
        this.play();
      }
    }

    /** TimingCallbacks' event: light the notes sounding and move the cursor line; null: the end. */
    onEvent(event) {
      if (!event) {
        this.stop();
        return;
      }
      this.light(event.elements ? event.elements.flat() : []);
      const svg = this.view.sheet.querySelector("svg");
      if (!svg) return;
      if (!this.cursor || this.cursor.ownerSVGElement !== svg) {
        this.cursor = document.createElementNS("http://www.w3.org/2000/svg", "line");
        this.cursor.setAttribute("class", "abcjs-cursor");
        this.cursor.setAttribute("data-testid", "cursor");
        svg.appendChild(this.cursor);
      }
      const x = event.left - 2;
      this.cursor.setAttribute("x1", x);
      this.cursor.setAttribute("x2", x);
      this.cursor.setAttribute("y1", event.top);
      this.cursor.setAttribute("y2", event.top + event.height);
    }

    light(elements) {
      for (const node of this.lit) node.classList.remove("sounding");
      for (const node of elements) node.classList.add("sounding");
      this.lit = elements;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // A tune view: the sheet and the ABC text, each pointing at the other

  const views = new Set();
  const PHONE = window.matchMedia("(max-width: 600px)");
  PHONE.addEventListener("change", () => {
    for (const view of views) if (view.abc && view.interactive && !view.busy()) view.show(view.abc);
  });

  class TuneView {
    /** sheet: the element abcjs draws in; text: the <pre> that holds the ABC. */
    constructor(sheet, text) {
      this.sheet = sheet;
      this.text = text;
      this.abc = "";
      this.visualObj = null;
      this.fromClick = false;
      views.add(this);
    }

    /** Draw abc (interactive: notes can be clicked) and show its text. */
    show(abc, {interactive = true} = {}) {
      this.abc = abc;
      this.interactive = interactive;
      this.text.textContent = abc;
      // the N: line (folkrnn's provenance) stays in the text, not on the sheet: "%N" keeps every
      // character where it was, so abcjs's startChar/endChar still index the text shown
      // a phone-wide sheet: fewer bars a line, at a size one can read, rather than the whole line
      // shrunk; its title is the card's heading (a long one would not fit across the staff)
      const narrow = PHONE.matches;
      const drawn = abc.replace(narrow ? /^[NT]:/gm : /^N:/gm, (field) => "%" + field[0]);
      const rendered = ABCJS.renderAbc(this.sheet, drawn, {
        responsive: "resize",
        ...(narrow ? {staffwidth: 360, wrap: {minSpacing: 1.5, maxSpacing: 2.7, preferredMeasuresPerLine: 2}, scale: 0.9} : {}),
        add_classes: true,
        paddingleft: 0,
        paddingright: 0,
        paddingtop: 8,
        selectionColor: "#b4441f",
        foregroundColor: "#2b2118",
        clickListener: interactive ? (abcElem) => this.noteClicked(abcElem) : undefined,
        selectTypes: interactive ? ["note", "bar"] : false,
      });
      this.visualObj = rendered[0] || null;
      return this.visualObj;
    }

    /** A note in the sheet clicked: select its characters in the ABC text. */
    noteClicked(abcElem) {
      if (!abcElem || abcElem.startChar === undefined || abcElem.startChar < 0) return;
      const node = this.text.firstChild;
      if (!node) return;
      const end = Math.min(abcElem.endChar, node.length);
      this.fromClick = true;
      window.getSelection().setBaseAndExtent(node, abcElem.startChar, node, end);
      this.text.dataset.selected = `${abcElem.startChar}-${end}`;
    }

    /** The document's selection in this text, as character offsets, or null. */
    selectionRange() {
      const selection = window.getSelection();
      if (!selection.rangeCount) return null;
      const range = selection.getRangeAt(0);
      if (!this.text.contains(range.startContainer) || !this.text.contains(range.endContainer)) return null;
      const offset = (container, offsetIn) => {
        const before = document.createRange();
        before.selectNodeContents(this.text);
        before.setEnd(container, offsetIn);
        return before.toString().length;
      };
      return [offset(range.startContainer, range.startOffset), offset(range.endContainer, range.endOffset)];
    }

    /** The ABC text's selection changed: light the notes it covers. */
    selectionChanged() {
      if (this.fromClick) {
        this.fromClick = false;
        return;
      }
      const range = this.selectionRange();
      if (!range || !this.visualObj || !this.visualObj.engraver) return;
      this.visualObj.engraver.rangeHighlight(range[0], range[1]);
      this.text.dataset.selected = `${range[0]}-${range[1]}`;
    }

    /** Is its tune playing (a new drawing would lose the cursor)? */
    busy() {
      return Boolean(this.player && this.player.state !== "stopped");
    }

    forget() {
      views.delete(this);
    }
  }

  let selectionPending = false;
  document.addEventListener("selectionchange", () => {
    if (selectionPending) return;
    selectionPending = true;
    requestAnimationFrame(() => {
      selectionPending = false;
      const selection = window.getSelection();
      if (!selection.rangeCount) return;
      const anchor = selection.anchorNode;
      for (const view of views) {
        if (anchor && view.text.contains(anchor)) view.selectionChanged();
      }
    });
  });

  /** Fill an instrument <select> from /api/options. */
  function fillInstruments(select, opts, first) {
    const list = choices(opts && opts.instruments);
    fillSelect(select, list.length ? list : Object.keys(PROGRAMS).map((value) => ({value, label: value})), first);
  }

  /** "slipjig" -> "slip jig". */
  const RHYTHM_WORDS = {slipjig: "slip jig", barndance: "barn dance", any: "any rhythm", dance: "any dance",
    other: "no dance"};
  const rhythmLabel = (value) => RHYTHM_WORDS[value] || value;

  return {
    el, role, fromTemplate, errorOf, getJSON, options, choices, fillSelect, setSelect, fillInstruments,
    instrumentPrograms, programFor, rhythmLabel, Player, TuneView, SOUNDFONT_URL,
  };
})();
