// lstmkit view: the page's script. Reads the JSON in #lv-data (built by lstmkit/view/page.py),
// inflates each unit's float32 tensors, and draws the input coloured by the chosen unit's state or
// gate. Nothing is fetched: the page works from disk with no network.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("lv-data").textContent);
  const $ = (id) => document.getElementById(id);
  const NAMES = {c: "cell state c", h: "hidden state h", i: "input gate i", f: "forget gate f",
                 g: "candidate g", o: "output gate o", r: "reset gate r", z: "update gate z", n: "candidate n"};
  const SIGNED = new Set(["c", "h", "g", "n"]);  // drawn blue (< 0) to red (> 0); gates 0..1 in green
  const MIN_STEPS = 3;                             // as lstmkit/view/probe.py
  const T = DATA.tokens.length;
  const view = {trace: 0, unit: null, tensor: null, rank: null, step: null, units: []};
  let spans = [];
  let prediction = null;

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (ch) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[ch]));
  }
  function visible(token) {  // a token as text a reader can see (spaces and line ends shown)
    return token.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/^ $/, "␣");
  }

  async function inflate(base64) {
    const binary = atob(base64);
    const bytes = new Uint8Array(binary.length);
    for (let k = 0; k < binary.length; k++) bytes[k] = binary.charCodeAt(k);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  async function floats(base64) {  // undo page.py's grouping of the float32 bytes by significance
    const grouped = await inflate(base64);
    const n = grouped.length / 4;
    const bytes = new Uint8Array(grouped.length);
    for (let b = 0; b < 4; b++) {
      const plane = b * n;
      for (let k = 0; k < n; k++) bytes[4 * k + b] = grouped[plane + k];
    }
    return new Float32Array(bytes.buffer);
  }
  function rows(flat, width) {  // (N * width) -> N views of width
    const out = [];
    for (let k = 0; k < flat.length; k += width) out.push(flat.subarray(k, k + width));
    return out;
  }

  async function load() {
    view.units = await Promise.all(DATA.traces.map(async (trace) => {
      const units = new Map();
      await Promise.all(Object.entries(trace.data).map(async ([unit, packed]) => {
        const parts = rows(await floats(packed), T);
        const tensors = {};
        trace.stored.forEach((name, k) => { tensors[name] = parts[k]; });
        if (trace.derived.includes("h")) {  // page.py left h out: it is o * tanh(c) in float32
          tensors.h = new Float32Array(T);
          for (let t = 0; t < T; t++) tensors.h[t] = tensors.o[t] * Math.tanh(tensors.c[t]);
        }
        units.set(Number(unit), tensors);
      }));
      return units;
    }));
    const p = DATA.prediction;
    if (p) {
      prediction = {kind: p.kind, labels: p.labels, signalName: p.signal_name, width: p.width,
                    values: rows(await floats(p.values), p.width),
                    ids: p.ids ? rows(await floats(p.ids), p.width) : null};
    }
  }

  // ---- the input -------------------------------------------------------------------------------
  function drawText() {
    const unknown = new Set(DATA.unknown);
    const parts = [];
    DATA.tokens.forEach((token, t) => {
      const title = unknown.has(t) ? ' class="lv-unknown" title="not in the model\'s vocabulary: read as unknown"' : "";
      parts.push(`<span data-t="${t}"${title}>${escapeHtml(token === "\n" ? "↵" : token)}</span>`);
      if (token === "\n") parts.push("\n");
      else if (DATA.joiner && t < T - 1) parts.push(escapeHtml(DATA.joiner));
    });
    const text = $("lv-text");
    text.innerHTML = parts.join("");
    if (DATA.series) text.classList.add("lv-series");
    spans = Array.from(text.querySelectorAll("span[data-t]"));
    text.addEventListener("mouseover", (event) => {
      const t = event.target.dataset ? event.target.dataset.t : undefined;
      if (t !== undefined) showStep(Number(t));
    });
    document.addEventListener("keydown", (event) => {
      if (view.step === null || event.target.tagName === "INPUT") return;
      if (event.key === "ArrowRight" && view.step < T - 1) showStep(view.step + 1);
      if (event.key === "ArrowLeft" && view.step > 0) showStep(view.step - 1);
    });
  }

  function scaleOf(name, values) {
    // The cell state is unbounded: full colour from this unit's 98th percentile of |c| on, so that
    // a few large values do not leave the rest of the text pale.
    if (name !== "c") return 1;
    const sizes = Float64Array.from(values, Math.abs).sort();
    const scale = sizes[Math.min(sizes.length - 1, Math.floor(0.98 * sizes.length))];
    return scale > 0 ? scale : 1;
  }
  function colour(name, value, scale) {
    if (SIGNED.has(name)) {
      const x = Math.max(-1, Math.min(1, value / scale));
      const alpha = (Math.abs(x) * 0.85).toFixed(2);
      return x >= 0 ? `rgba(214, 39, 40, ${alpha})` : `rgba(31, 119, 180, ${alpha})`;
    }
    return `rgba(44, 160, 44, ${(Math.max(0, Math.min(1, value)) * 0.85).toFixed(2)})`;
  }
  function paint() {
    const tensors = view.units[view.trace].get(view.unit);
    const values = tensors[view.tensor];
    const scale = scaleOf(view.tensor, values);
    for (let t = 0; t < T; t++) spans[t].style.backgroundColor = colour(view.tensor, values[t], scale);
    const legend = SIGNED.has(view.tensor)
      ? `<span>${view.tensor === "c" ? "≤ " : ""}${(-scale).toPrecision(3)}</span><i style="background: linear-gradient(to right, rgba(31,119,180,0.85), #fff, rgba(214,39,40,0.85))"></i><span>${view.tensor === "c" ? "≥ " : ""}${scale.toPrecision(3)}</span>`
      : `<span>0</span><i style="background: linear-gradient(to right, #fff, rgba(44,160,44,0.85))"></i><span>1</span>`;
    $("lv-legend").innerHTML = `${escapeHtml(NAMES[view.tensor] || view.tensor)}, unit ${view.unit}: ${legend}`;
    if (view.step !== null) showStep(view.step);
  }

  // ---- controls and the unit list ---------------------------------------------------------------
  function fillSelect(select, options, chosen) {
    select.innerHTML = options.map(([value, text]) => `<option value="${escapeHtml(String(value))}">${escapeHtml(text)}</option>`).join("");
    select.value = String(chosen);
  }
  function rankedUnits() {
    const trace = DATA.traces[view.trace];
    const units = Array.from(view.units[view.trace].keys());
    const scores = trace.scores[view.rank];
    if (!scores) return units.sort((a, b) => a - b);
    const key = (u) => (scores[u] === null ? -Infinity : scores[u]);
    return units.sort((a, b) => key(b) - key(a) || a - b);
  }
  function format(name, value) {
    if (value === null) return "–";
    return name === "memory" ? value.toFixed(1) : value.toFixed(3);
  }
  function drawUnits() {
    const trace = DATA.traces[view.trace];
    const names = Object.keys(trace.scores);
    $("lv-units").tHead.innerHTML = "<tr><th title=\"unit index in the layer\">unit</th>" +
      names.map((n) => `<th title="${escapeHtml(trace.score_text[n])}">${escapeHtml(n)}</th>`).join("") + "</tr>";
    $("lv-units").tBodies[0].innerHTML = rankedUnits().map((u) =>
      `<tr data-unit="${u}"${u === view.unit ? ' class="lv-selected"' : ""}><td>${u}</td>` +
      names.map((n) => `<td>${format(n, trace.scores[n][u])}</td>`).join("") + "</tr>").join("");
    const shown = view.units[view.trace].size;
    const budget = DATA.budget;
    $("lv-budget").textContent = (shown === trace.units ? `All ${shown} units of this layer.` :
      `${shown} of this layer's ${trace.units} units are in this page (${budget.shown} of ${budget.total} in all): ` +
      `the ones ranked highest by the probe and by each score, to keep the page under ` +
      `${(budget.max_bytes / 1e6).toFixed(1)} MB.`) + " Hover a column name for what it measures.";
  }
  function choose(traceIndex, unit, tensor) {
    view.trace = traceIndex;
    const trace = DATA.traces[traceIndex];
    view.tensor = trace.tensors.includes(tensor) ? tensor : trace.tensors[0];
    if (!(view.rank in trace.scores)) view.rank = Object.keys(trace.scores)[0] || "unit";
    view.unit = view.units[traceIndex].has(unit) ? unit : rankedUnits()[0];
    fillSelect($("lv-layer"), DATA.traces.map((t, k) => [k, t.label]), view.trace);
    fillSelect($("lv-tensor"), trace.tensors.map((n) => [n, NAMES[n] || n]), view.tensor);
    fillSelect($("lv-rank"), Object.keys(trace.scores).map((n) => [n, n]).concat([["unit", "unit index"]]), view.rank);
    drawUnits();
    paint();
  }
  function wireControls() {
    $("lv-layer").addEventListener("change", (e) => choose(Number(e.target.value), null, view.tensor));
    $("lv-tensor").addEventListener("change", (e) => choose(view.trace, view.unit, e.target.value));
    $("lv-rank").addEventListener("change", (e) => { view.rank = e.target.value; drawUnits(); });
    $("lv-units").tBodies[0].addEventListener("click", (e) => {
      const row = e.target.closest("tr");
      if (row) choose(view.trace, Number(row.dataset.unit), view.tensor);
    });
  }

  // ---- hover details -----------------------------------------------------------------------------
  function bar(p) { return `<span class="lv-bar" style="width: ${Math.round(p * 80)}px"></span>`; }
  function predictionHtml(t) {
    if (!prediction) return "";
    const row = prediction.values[t];  // probabilities, or forecasts
    if (prediction.kind === "next") {
      const ids = prediction.ids[t];
      const next = t + 1 < T ? DATA.tokens[t + 1] : null;
      const rowsHtml = Array.from(ids, (id, k) => {
        const label = prediction.labels[id];
        return `<tr${label === next ? ' class="lv-actual"' : ""}><td>${escapeHtml(JSON.stringify(visible(label)))}</td>` +
          `<td class="lv-value" data-name="p:${escapeHtml(label)}">${row[k].toFixed(4)}</td><td>${bar(row[k])}</td></tr>`;
      }).join("");
      return `<h2>Next token, as the model predicts it</h2><table id="lv-prediction">${rowsHtml}</table>` +
        (next !== null ? `<p class="lv-note">actually next: ${escapeHtml(JSON.stringify(visible(next)))}</p>` : "");
    }
    if (prediction.kind === "classes") {
      const rowsHtml = prediction.labels.map((label, k) =>
        `<tr><td>P(${escapeHtml(label)})</td><td class="lv-value" data-name="p:${escapeHtml(label)}">${row[k].toFixed(4)}</td><td>${bar(row[k])}</td></tr>`).join("");
      return `<h2>Prediction on the input up to here</h2><table id="lv-prediction">${rowsHtml}</table>`;
    }
    if (Number.isNaN(row[0])) return `<h2>Forecast</h2><p class="lv-note">none yet at this step (the window is too short)</p>`;
    const rowsHtml = Array.from(row, (v, k) => `<tr><td>t+${k + 1}</td><td class="lv-value" data-name="p:${k + 1}">${v.toPrecision(6)}</td></tr>`).join("");
    return `<h2>Forecast from here</h2><table id="lv-prediction">${rowsHtml}</table>`;
  }
  function showStep(t) {
    if (view.step !== null && spans[view.step]) spans[view.step].classList.remove("lv-current");
    view.step = t;
    spans[t].classList.add("lv-current");
    const trace = DATA.traces[view.trace];
    const tensors = view.units[view.trace].get(view.unit);
    const gateRows = trace.tensors.map((name) =>
      `<tr><td>${escapeHtml(NAMES[name] || name)}</td><td class="lv-value" data-name="${name}">${tensors[name][t].toFixed(6)}</td></tr>`).join("");
    $("lv-hover").innerHTML =
      `<h2>Step ${t}: ${escapeHtml(JSON.stringify(visible(DATA.tokens[t])))}</h2>` +
      `<p class="lv-note">${escapeHtml(trace.label)}, unit ${view.unit}</p>` +
      `<table id="lv-gates">${gateRows}</table>` + predictionHtml(t);
    drawPlot(t);
  }

  // ---- a series: the values, and the forecast from the hovered step ------------------------------
  function drawPlot(step) {
    if (!DATA.series) return;
    const canvas = $("lv-plot");
    canvas.hidden = false;
    const context = canvas.getContext("2d");
    const values = DATA.series;
    const forecast = step !== null && step !== undefined && prediction && prediction.kind === "forecast" ? prediction.values[step] : [];
    const all = values.concat(Array.from(forecast)).filter((v) => v !== null && Number.isFinite(v));
    const low = all.reduce((a, b) => Math.min(a, b), Infinity), high = all.reduce((a, b) => Math.max(a, b), -Infinity);
    const span = high > low ? high - low : 1;
    const steps = T + (forecast.length || 0);
    const x = (t) => 4 + (t / Math.max(1, steps - 1)) * (canvas.width - 8);
    const y = (v) => canvas.height - 6 - ((v - low) / span) * (canvas.height - 12);
    context.clearRect(0, 0, canvas.width, canvas.height);
    const line = (points, colourName) => {
      context.strokeStyle = colourName;
      context.beginPath();
      let started = false;
      for (const [t, v] of points) {
        if (v === null || !Number.isFinite(v)) { started = false; continue; }
        if (started) context.lineTo(x(t), y(v)); else context.moveTo(x(t), y(v));
        started = true;
      }
      context.stroke();
    };
    line(values.map((v, t) => [t, v]), "#222");
    if (step !== null && step !== undefined) {
      context.fillStyle = "rgba(0, 0, 0, 0.15)";
      context.fillRect(x(step) - 1, 0, 2, canvas.height);
      line([[step, values[step]]].concat(Array.from(forecast, (v, k) => [step + k + 1, v])), "#d62728");
    }
  }

  // ---- probe -----------------------------------------------------------------------------------
  function stepOffsets() {
    const offsets = new Array(T);
    let at = 0;
    DATA.tokens.forEach((token, t) => { offsets[t] = at; at += token.length + DATA.joiner.length; });
    return offsets;
  }
  function lowerBound(sorted, value) {
    let low = 0, high = sorted.length;
    while (low < high) { const mid = (low + high) >> 1; if (sorted[mid] < value) low = mid + 1; else high = mid; }
    return low;
  }
  function regexFeatures(pattern) {  // the same features as probe.regex_features
    const expression = new RegExp(pattern, "g");
    const offsets = stepOffsets();
    const inside = new Float64Array(T), position = new Float64Array(T), remaining = new Float64Array(T);
    const text = DATA.tokens.join(DATA.joiner);
    let match, matched = 0;
    while ((match = expression.exec(text)) !== null) {
      if (match[0].length === 0) { expression.lastIndex++; continue; }
      const first = lowerBound(offsets, match.index), last = lowerBound(offsets, match.index + match[0].length);
      if (last <= first) continue;
      matched++;
      for (let t = first; t < last; t++) { inside[t] = 1; position[t] = t - first; remaining[t] = last - 1 - t; }
    }
    const every = new Uint8Array(T).fill(1), within = Uint8Array.from(inside);
    return {matched, features: {inside: [inside, every], position: [position, within], remaining: [remaining, within]}};
  }
  function correlation(state, feature, mask) {  // as scores.correlations, for one unit
    let n = 0, sx = 0, sy = 0;
    for (let t = 0; t < T; t++) if (mask[t]) { n++; sx += state[t]; sy += feature[t]; }
    if (n < 2) return NaN;
    const mx = sx / n, my = sy / n;
    let sxy = 0, sxx = 0, syy = 0;
    for (let t = 0; t < T; t++) {
      if (!mask[t]) continue;
      const dx = state[t] - mx, dy = feature[t] - my;
      sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
    }
    const denominator = Math.sqrt(sxx * syy);
    return denominator > 0 ? sxy / denominator : NaN;
  }
  function runProbe(pattern, wanted) {
    const status = $("lv-probe-status");
    let found;
    try { found = regexFeatures(pattern); } catch (error) {
      status.textContent = `not a valid regular expression: ${error.message}`;
      return [];
    }
    const inside = found.features.inside[0];
    const marked = inside.reduce((sum, v) => sum + v, 0) < T / 2;  // marking most of the text marks nothing
    spans.forEach((span, t) => span.classList.toggle("lv-match", marked && inside[t] === 1));
    if (!found.matched) { status.textContent = "matches no step of the input"; $("lv-probe-hits").innerHTML = ""; return []; }
    const hits = [];
    for (const [name, [values, mask]] of Object.entries(found.features)) {
      if (wanted !== "all" && wanted !== name) continue;
      let count = 0, low = Infinity, high = -Infinity;
      for (let t = 0; t < T; t++) if (mask[t]) { count++; low = Math.min(low, values[t]); high = Math.max(high, values[t]); }
      if (count < MIN_STEPS || low === high) continue;
      view.units.forEach((units, traceIndex) => units.forEach((tensors, unit) => {
        const state = tensors.c || tensors.h;
        const r = correlation(state, values, mask);
        if (Number.isFinite(r)) hits.push({trace: traceIndex, unit, feature: name, correlation: r, steps: count});
      }));
    }
    hits.sort((a, b) => Math.abs(b.correlation) - Math.abs(a.correlation));
    const top = hits.slice(0, 10);
    $("lv-probe-hits").innerHTML = top.map((hit, k) =>
      `<li data-hit="${k}">${escapeHtml(DATA.traces[hit.trace].label)}, unit ${hit.unit}: ${hit.feature} ` +
      `<b class="lv-r">r = ${hit.correlation.toFixed(3)}</b></li>`).join("");
    status.textContent = top.length ? `${found.matched} match(es); best |r| among the units in this page:` :
      "the features are constant on these steps: nothing to correlate";
    $("lv-probe-hits").onclick = (event) => {
      const item = event.target.closest("li");
      if (item) { const hit = top[Number(item.dataset.hit)]; choose(hit.trace, hit.unit, "c"); }
    };
    return top;
  }
  function wireProbe() {
    const form = $("lv-probe");
    if (DATA.series) { form.hidden = true; return; }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      runProbe($("lv-probe-pattern").value, $("lv-probe-feature").value);
    });
    $("lv-probe-pattern").value = DATA.probe.pattern;
  }

  // ---- start -------------------------------------------------------------------------------------
  async function start() {
    $("lv-title").textContent = DATA.title;
    $("lv-subtitle").textContent = DATA.subtitle;
    $("lv-note").textContent = DATA.note;
    if (typeof DecompressionStream === "undefined") {
      $("lv-hover").innerHTML = '<p class="lv-error">This browser cannot unpack the page\'s data (no DecompressionStream): open it in a current Chromium, Firefox or Safari.</p>';
      return;
    }
    await load();
    drawText();
    wireControls();
    wireProbe();
    const first = DATA.probe.hits[0];
    const ranks = Object.keys(DATA.traces[0].scores);
    view.rank = ranks.includes("output") ? "output" : ranks[0];
    if (first) choose(first.trace, first.unit, "c"); else choose(0, null, "c");
    if (DATA.probe.pattern) runProbe(DATA.probe.pattern, "all");
    drawPlot(null);
    window.lstmkitView.readyMs = performance.now();
    document.body.dataset.ready = "1";
  }
  window.lstmkitView = {view, choose, showStep, runProbe, readyMs: null};
  start();
})();
