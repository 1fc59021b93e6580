// The console's overview: the picture fitted to the screen, pan and zoom, the words of a state or an
// arrow on hover and click, code names on demand, and (served with a database) the live figures on it.
// Plain script, no library and nothing fetched but the page's own live.json.
"use strict";
(function () {
  const model = JSON.parse(document.getElementById("model").textContent);
  const holder = document.getElementById("picture");
  const svg = holder.querySelector("svg");
  const panel = document.querySelector("aside");
  const details = document.getElementById("details");
  const SVGNS = "http://www.w3.org/2000/svg";
  let live = null;
  let pinned = null;

  // --- fit, pan and zoom: the viewBox moves, the text stays sharp -----------------------------------------
  const full = svg.viewBox.baseVal;
  const home = { x: full.x, y: full.y, w: full.width, h: full.height };
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  let view = Object.assign({}, home);
  function show() { svg.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`); }
  // A lifecycle too large to read whole on this screen (titles under 11 px) opens at its top left at a
  // readable size (11.5 px, clear of the floor); "fit" still shows all of it.
  const box = holder.getBoundingClientRect(), fitted = Math.min(box.width / home.w, box.height / home.h);
  if (fitted * model.title_points < 11) {
    const readable = 11.5 / model.title_points;
    view = { x: home.x, y: home.y, w: box.width / readable, h: box.height / readable };
    show();
  }
  function zoom(factor, cx, cy) {
    const w = Math.min(home.w * 2, Math.max(home.w / 8, view.w * factor));
    const h = w * (view.h / view.w);
    const px = cx === undefined ? 0.5 : cx, py = cy === undefined ? 0.5 : cy;
    view = { x: view.x + (view.w - w) * px, y: view.y + (view.h - h) * py, w: w, h: h };
    show();
  }
  holder.addEventListener("wheel", (e) => {
    e.preventDefault();
    const box = svg.getBoundingClientRect();
    zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, (e.clientX - box.left) / box.width, (e.clientY - box.top) / box.height);
  }, { passive: false });
  let drag = null;
  holder.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || e.target.closest("button")) return;
    drag = { x: e.clientX, y: e.clientY, view: Object.assign({}, view), moved: false };
  });
  window.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const scale = view.w / svg.getBoundingClientRect().width;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; holder.classList.add("dragging"); }
    view = { x: drag.view.x - dx * scale, y: drag.view.y - dy * scale, w: view.w, h: view.h };
    show();
  });
  window.addEventListener("pointerup", () => {
    if (drag && drag.moved) holder.dataset.dragged = "1";
    drag = null; holder.classList.remove("dragging");
  });
  document.getElementById("zoom-in").onclick = () => zoom(1 / 1.25);
  document.getElementById("zoom-out").onclick = () => zoom(1.25);
  document.getElementById("zoom-fit").onclick = () => { view = Object.assign({}, home); show(); };

  // --- words: a state's or an arrow's, in the panel -------------------------------------------------------
  function esc(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function code(name) { return ` <span class="code">(${esc(name)})</span>`; }
  function conditions(arrow) {
    if (!arrow.conditions.length) return "";
    return "<ul>" + arrow.conditions.map(([n, words]) => `<li>[${n}] ${esc(words)}</li>`).join("") + "</ul>";
  }
  function arrowLine(id) {
    const a = model.arrows[id];
    const figure = live && live.arrows[id] ? ` <span class="figure">taken ${live.arrows[id]}×</span>` : "";
    const after = a.after ? ` after ${esc(a.after)}` : "";
    return `<li><b>${esc(a.action)}</b>${after} (${esc(a.who)})${a.dest ? " → " + esc(a.to) : ""}${figure}` +
      code(a.trigger) + conditions(a) + "</li>";
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
    for (const [unit, size] of units) {
      if (seconds >= size) { const n = Math.round(seconds / size * 10) / 10; return `${n} ${unit}${n === 1 ? "" : "s"}`; }
    }
    return `${Math.round(seconds)} seconds`;
  }
  function liveState(name) {
    if (!live) return "";
    const s = live.states[name] || {};
    const link = (filter, n, words) => n ? `<a href="${esc(live.claims)}?state=${encodeURIComponent(name)}&amp;filter=${filter}">${n} ${words}</a>` : `0 ${words}`;
    let html = `<h3>Now (${esc(live.now)})</h3><ul>`;
    if (model.states[name].final) {
      html += `<li>${link("all", s.claims || 0, s.claims === 1 ? "claim closed here (all time)" : "claims closed here (all time)")}</li>`;
    } else {
      html += s.open ? `<li>${link("open", s.open, "open claims")}; in this state for: oldest ${duration(s.oldest_age)}, median ${duration(s.median_age)}</li>` : "<li>no open claims</li>";
      if (!model.states[name].window) html += `<li>${link("stuck", s.stuck || 0, "stuck")} (unchanged for over ${duration(live.stuck_after)}; no deadline moves them)</li>`;
      else html += `<li>${link("overdue", s.overdue || 0, "overdue")} (deadline passed, not yet fired)</li>`;
    }
    html += `</ul><h3>Over the last ${esc(live.window)}</h3><ul>`;
    if (s.left) html += `<li>claims left it ${s.left} times; time spent: median ${duration(s.time_median)}, 90th percentile ${duration(s.time_p90)}</li>`;
    else html += "<li>no claim left it</li>";
    return html + "</ul>";
  }
  function describe(kind, id) {
    let html = '<button class="back" type="button">Back to the summary</button>';
    if (kind === "state") {
      const s = model.states[id];
      html += `<h2>${esc(s.title)}${code(id)}</h2><p>${esc(s.meaning.charAt(0).toUpperCase() + s.meaning.slice(1))}.</p>`;
      if (s.final) html += `<p><b>Final:</b> the claim is closed. ${esc(s.outcome.charAt(0).toUpperCase() + s.outcome.slice(1))}.</p>`;
      if (s.note) html += `<p><b>Rule:</b> ${esc(s.note)}</p>`;
      if (s.window) html += `<p><b>Deadline:</b> ${esc(s.deadline)}. When it passes, the clock acts (below).</p>`;
      else if (!s.final) html += "<p><b>No deadline:</b> a claim stays here until someone acts.</p>";
      html += liveState(id);
      if (s.leaving.length) html += "<h3>What can happen next</h3><ul>" + s.leaving.map(arrowLine).join("") + "</ul>";
      if (s.inside.length) html += "<h3>What can happen here (the claim stays)</h3><ul>" + s.inside.map(arrowLine).join("") + "</ul>";
      if (s.entering.length) html += "<h3>How a claim gets here</h3><ul>" + s.entering.map(arrowLine).join("") + "</ul>";
    } else {
      const a = model.arrows[id];
      html += `<h2>${esc(a.action)}${code(a.trigger)}</h2><p>${esc(a.description)}</p>`;
      html += `<p><b>Who:</b> ${esc(a.who)}</p><p><b>From:</b> ${esc(a.from)}<br><b>To:</b> ${esc(a.to)}</p>`;
      if (a.after) html += `<p><b>Deadline:</b> fired by the clock after ${esc(a.after)}</p>`;
      html += a.conditions.length ? "<p><b>Only when:</b></p>" + conditions(a) : "<p>No conditions.</p>";
      if (a.data.length) html += `<p class="code"><b>Data it takes:</b> ${esc(a.data.join(", "))}</p>`;
      if (live) html += `<p><b>Taken</b> ${live.arrows[id] || 0} times over the last ${esc(live.window)}.</p>`;
    }
    details.innerHTML = html;
    details.querySelector(".back").onclick = unpin;
    panel.classList.add("showing");
    panel.scrollTop = 0;
  }
  function select(element) {
    svg.querySelectorAll(".selected").forEach((e) => e.classList.remove("selected"));
    if (element) element.classList.add("selected");
  }
  function target(e) { return e.target.closest("g.state, g.arrow"); }
  // A state's box is state-NAME; an arrow is arrow-N-FROM (N the transition, FROM the state it leaves).
  function which(g) { return g.classList.contains("state") ? ["state", g.id.slice(6)] : ["arrow", g.id.split("-")[1]]; }
  function unpin() { pinned = null; select(null); panel.classList.remove("showing"); }
  svg.addEventListener("mouseover", (e) => { const g = target(e); if (g && !pinned) describe(...which(g)); });
  svg.addEventListener("mouseout", (e) => {  // words stay while the pointer goes over to read or click them
    const g = target(e), to = e.relatedTarget;
    if (g && !pinned && !(to && (g.contains(to) || panel.contains(to)))) panel.classList.remove("showing");
  });
  panel.addEventListener("mouseleave", (e) => {
    if (!pinned && !(e.relatedTarget && e.relatedTarget.closest && e.relatedTarget.closest("g.state, g.arrow"))) {
      panel.classList.remove("showing");
    }
  });
  svg.addEventListener("click", (e) => {
    if (holder.dataset.dragged) { delete holder.dataset.dragged; return; }
    const badge = e.target.closest("g.live");
    if (badge) { window.location.href = badge.dataset.href; return; }
    const g = target(e);
    if (!g) { unpin(); return; }
    pinned = g; select(g); describe(...which(g));
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") unpin(); });

  // --- code names on demand ---------------------------------------------------------------------------------
  const codes = document.getElementById("codes");
  function codeNames() {
    document.body.classList.toggle("codes-off", !codes.checked);
    svg.querySelectorAll("text.codename").forEach((t) => t.remove());
    if (!codes.checked) return;
    svg.querySelectorAll("g.state").forEach((g) => {
      const box = g.getBBox();
      const t = document.createElementNS(SVGNS, "text");
      t.setAttribute("class", "codename");
      t.setAttribute("x", box.x + box.width / 2); t.setAttribute("y", box.y + box.height + 9);
      t.setAttribute("text-anchor", "middle"); t.setAttribute("font-size", "8"); t.setAttribute("fill", "#555");
      t.setAttribute("font-family", "DejaVu Sans Mono, monospace");
      t.textContent = g.id.slice(6);
      g.appendChild(t);
    });
  }
  codes.addEventListener("change", codeNames);
  codeNames();

  // --- the live figures: counts on the boxes, a heatmap, refreshed every 30 seconds --------------------------
  if (!model.live) return;
  const windowChoice = document.getElementById("window");
  const colourChoice = document.getElementById("colour");
  function heat(value, most) {  // white to a light purple, unlike any outcome's fill; titles stay readable
    const t = most ? Math.min(1, value / most) : 0;
    const mix = (a, b) => Math.round(a + (b - a) * t);
    return `rgb(${mix(255, 206)},${mix(255, 147)},${mix(255, 216)})`;
  }
  function badge(g, text, colour, href, left) {
    const box = g.querySelector("path, polygon").getBBox();
    const b = document.createElementNS(SVGNS, "g");
    b.setAttribute("class", "live"); b.dataset.href = href; b.dataset.state = g.id.slice(6);
    const w = 8 + 6 * text.length;
    const x = left ? box.x - 6 : box.x + box.width - w + 6;
    const r = document.createElementNS(SVGNS, "rect");
    r.setAttribute("x", x); r.setAttribute("y", box.y - 14);
    r.setAttribute("width", w); r.setAttribute("height", 14); r.setAttribute("rx", 7);
    r.setAttribute("fill", colour);
    const t = document.createElementNS(SVGNS, "text");
    t.setAttribute("x", x + w / 2); t.setAttribute("y", box.y - 3.5);
    t.setAttribute("text-anchor", "middle"); t.setAttribute("fill", "#fff");
    t.setAttribute("font-family", "DejaVu Sans, sans-serif");
    t.textContent = text;
    b.append(r, t);
    g.parentNode.appendChild(b);
  }
  function paint() {
    svg.querySelectorAll("g.live, text.taken").forEach((e) => e.remove());
    const states = live.states, colour = colourChoice.value;
    const most = Math.max(0, ...Object.values(states).map((s) => colour === "time" ? (s.time_median || 0) : (s.open || 0)));
    svg.querySelectorAll("g.state").forEach((g) => {
      const name = g.id.slice(6), s = states[name] || {}, final = model.states[name].final;
      const shape = g.querySelector("path, polygon");
      if (!shape.dataset.fill) shape.dataset.fill = shape.getAttribute("fill");
      const value = colour === "time" ? (s.time_median || 0) : (s.open || 0);
      shape.setAttribute("fill", colour === "none" || colour === "arrows" || final ? shape.dataset.fill : heat(value, most));
      const count = final ? (s.claims || 0) : (s.open || 0);
      const listed = (filter) => `${live.claims}?state=${encodeURIComponent(name)}&filter=${filter}`;
      badge(g, String(count), "#37474f", listed(final ? "all" : "open"), false);
      if (s.stuck) badge(g, `${s.stuck} stuck`, "#c62828", listed("stuck"), true);
      if (s.overdue) badge(g, `${s.overdue} overdue`, "#c62828", listed("overdue"), true);
    });
    const busiest = Math.max(0, ...Object.values(live.arrows));
    svg.querySelectorAll("g.arrow").forEach((g) => {
      const [, number, source] = g.id.split("-");
      const n = live.arrows[source === "any" ? number : `${number}-${source}`] || 0;
      const path = g.querySelector("path");
      if (!path.dataset.width) path.dataset.width = path.getAttribute("stroke-width") || "1";
      path.setAttribute("stroke-width", colour === "arrows" && busiest ? 1 + 7 * n / busiest : path.dataset.width);
      const lines = g.querySelectorAll("text");
      if (!n || !lines.length) return;
      const last = lines[lines.length - 1];
      const t = document.createElementNS(SVGNS, "text");
      t.setAttribute("class", "taken"); t.setAttribute("x", last.getAttribute("x"));
      t.setAttribute("y", Number(last.getAttribute("y")) + 11); t.setAttribute("text-anchor", "middle");
      t.setAttribute("font-size", "10"); t.setAttribute("font-weight", "bold"); t.setAttribute("fill", "#333");
      t.setAttribute("font-family", "DejaVu Sans, sans-serif");
      t.textContent = `×${n}`;
      g.appendChild(t);
    });
    const scale = { claims: `open claims, white 0 to purple ${most}`, time: `median time spent, white 0 to purple ${duration(most)}`,
      arrows: `arrows' width by how often taken (most: ${busiest})`, none: "" }[colour];
    document.getElementById("asof").textContent = `live at ${live.now}` + (scale ? `; colour: ${scale}` : "");
    if (pinned) describe(...which(pinned));
  }
  async function refresh() {
    const url = `${model.live}?window=${encodeURIComponent(windowChoice.value)}`;
    const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!answer.ok) { document.getElementById("asof").textContent = `live figures unavailable (${answer.status})`; return; }
    live = await answer.json();
    paint();
  }
  windowChoice.addEventListener("change", refresh);
  colourChoice.addEventListener("change", () => live && paint());
  refresh();
  setInterval(refresh, 30000);
})();
