/* folkrnn serve: the tunebook page (/tunebook). Lists the saved tunes (GET /api/tunebook), newest
   first, with search and filters kept in the page's address; each opens on the composer (its
   permalink) or shows its sheet, ABC and player here; Remove deletes it. */
"use strict";

(() => {
  const {el, role, fromTemplate, getJSON, choices, fillSelect, setSelect, fillInstruments, instrumentPrograms,
    rhythmLabel, Player, TuneView} = folkrnn;
  const LIMIT = 20;

  const filters = document.getElementById("filters");
  const list = document.getElementById("book-list");
  const count = document.getElementById("count");
  const bookError = document.getElementById("book-error");
  const prev = document.getElementById("prev");
  const next = document.getElementById("next");
  let offset = 0;
  let opts = {};
  let programs = {};
  let request = 0;
  const players = new Set();

  async function load() {
    const mine = ++request;
    const params = new URLSearchParams();
    for (const name of ["q", "rhythm", "mode"]) {
      const value = filters.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    const shown = new URLSearchParams(params);
    if (offset) shown.set("offset", String(offset));
    window.history.replaceState(null, "", shown.toString() ? `/tunebook?${shown}` : "/tunebook");
    params.set("offset", String(offset));
    params.set("limit", String(LIMIT));
    let body;
    try {
      body = await getJSON(`/api/tunebook?${params}`);
    } catch (error) {
      if (mine === request) bookError.textContent = `Could not read the tunebook: ${error.message || error}`;
      return;
    }
    if (mine !== request) return;
    bookError.textContent = "";
    for (const player of players) player.stop();
    players.clear();
    list.replaceChildren(...body.tunes.map(entry));
    const total = body.total || 0;
    const filtered = params.has("q") || params.has("rhythm") || params.has("mode");
    if (!total) {
      count.textContent = filtered ? "No saved tune matches." : "No tunes saved yet: compose one and press \u201cSave to tunebook\u201d.";
    } else {
      const last = Math.min(offset + body.tunes.length, total);
      count.textContent = `${total} tune${total === 1 ? "" : "s"}${filtered ? " match" + (total === 1 ? "es" : "") : ""}` +
        (total > LIMIT ? ` \u00b7 ${offset + 1}\u2013${last} shown` : "");
    }
    prev.hidden = offset <= 0;
    next.hidden = offset + body.tunes.length >= total;
  }

  function entry(tune) {
    const node = fromTemplate("book-entry");
    node.dataset.id = String(tune.id);
    const query = String(tune.query || "");
    const link = role(node, "link");
    link.textContent = tune.title || "Untitled";
    link.href = `/?${query}`;
    role(node, "open").href = `/?${query}`;
    const bits = [tune.rhythm && rhythmLabel(tune.rhythm), tune.meter, tune.key || tune.mode,
      tune.seed !== undefined && `seed ${tune.seed}`, created(tune.created)].filter(Boolean);
    role(node, "meta").textContent = bits.join(" \u00b7 ");

    const viewBox = role(node, "view");
    const view = new TuneView(role(node, "sheet"), role(node, "abc"));
    const instrument = role(node, "instrument");
    fillInstruments(instrument, opts);
    const player = new Player(view, {
      play: role(node, "play"), stop: role(node, "stop"), tempo: role(node, "tempo"),
      tempoLabel: role(node, "tempo-label"), instrument, status: role(node, "player-status"),
    }, programs);
    players.add(player);
    const show = role(node, "show");
    show.addEventListener("click", async () => {
      const open = viewBox.hidden;
      viewBox.hidden = !open;
      show.setAttribute("aria-expanded", String(open));
      show.textContent = open ? "Hide" : "Show";
      if (!open) {
        player.stop();
        return;
      }
      if (view.abc) return;
      try {
        const full = await getJSON(`/api/tunebook/${encodeURIComponent(tune.id)}`);
        view.show(String(full.abc || ""));
        const params = new URLSearchParams(query);
        const name = params.get("instrument") || "fiddle";
        if ([...instrument.options].some((o) => o.value === name)) instrument.value = name;
        player.reset(Number(params.get("tempo")) || 0);
      } catch (error) {
        role(node, "player-status").textContent = `Could not read the tune: ${error.message || error}`;
      }
    });
    role(node, "remove").addEventListener("click", async () => {
      const button = role(node, "remove");
      button.disabled = true;
      try {
        await getJSON(`/api/tunebook/${encodeURIComponent(tune.id)}`, {method: "DELETE"});
        player.stop();
        view.forget();
        players.delete(player);
        node.remove();
        if (!list.children.length && offset > 0) offset = Math.max(0, offset - LIMIT);
        load();
      } catch (error) {
        button.disabled = false;
        bookError.textContent = `Could not remove \u201c${tune.title}\u201d: ${error.message || error}`;
      }
    });
    return node;
  }

  function created(text) {
    if (!text) return "";
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? String(text) : date.toLocaleDateString(undefined, {dateStyle: "medium"});
  }

  let searchTimer = 0;
  const filtersChanged = (event) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      offset = 0;
      load();
    }, event.target.name === "q" ? 250 : 0);
  };
  filters.addEventListener("input", filtersChanged);
  filters.addEventListener("change", filtersChanged); // a <select> set by script or assistive tools
  filters.addEventListener("submit", (event) => event.preventDefault());
  prev.addEventListener("click", () => {
    offset = Math.max(0, offset - LIMIT);
    load();
  });
  next.addEventListener("click", () => {
    offset += LIMIT;
    load();
  });

  (async () => {
    try {
      opts = await folkrnn.options();
    } catch (_) {
      opts = {};
    }
    programs = instrumentPrograms(opts);
    fillSelect(filters.elements.rhythm, choices(opts.rhythms).filter((c) => c.value !== "any")
      .map((c) => ({value: c.value, label: rhythmLabel(c.label)})), "every rhythm");
    fillSelect(filters.elements.mode, choices(opts.modes), "every mode");
    const params = new URLSearchParams(window.location.search);
    filters.elements.q.value = params.get("q") || "";
    setSelect(filters.elements.rhythm, params.get("rhythm") || "");
    setSelect(filters.elements.mode, params.get("mode") || "");
    offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
    load();
  })();
})();
