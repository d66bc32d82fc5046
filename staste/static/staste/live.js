/*
 * staste's live refresh.  A page that shows the present (a quick range, today, this month, the
 * dashboard) carries its settings as JSON in <script type="application/json"
 * id="staste-live-config"> ({"url": ..., "interval": seconds, "kind": "metrica" | "dashboard" | "page"}).
 * A "page" (the Performance pages) answers {"shown": {"cards": [...], "charts": {canvas id: spec},
 * "tables": {table id: rows}}}.
 * Every interval it asks that URL (the page's JSON export: one request, one Redis round trip)
 * and puts the new numbers in place: cards, charts, table cells.  It never reloads the page.
 *
 * Refreshing pauses while the tab is hidden (and restarts at once when it shows again), and the
 * #staste-live button pauses and resumes it by hand; the button says "live" or "live · paused".
 */
(function () {
  "use strict";

  var config, button, timer = null, inFlight = false, userPaused = false, failed = false;

  function readConfig() {
    var source = document.getElementById("staste-live-config");
    if (!source) { return null; }
    try { return JSON.parse(source.textContent); } catch (error) { return null; }
  }

  function labels() {
    return (config && config.labels) || {};
  }

  function paused() {
    return userPaused || document.hidden;
  }

  function showState() {
    if (!button) { return; }
    var text = labels();
    var state = paused() ? "paused" : (failed ? "failed" : "live");
    button.textContent = text[state] || (state === "live" ? "live" : "live · " + state);
    button.setAttribute("aria-pressed", paused() ? "false" : "true");
    button.classList.toggle("staste-paused", paused());
    button.classList.toggle("staste-failed", failed && !paused());
    button.setAttribute("data-state", state);
  }

  function schedule(delay) {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    if (paused()) { return; }
    timer = setTimeout(refresh, delay);
  }

  function setText(element, text) {
    if (element && element.textContent !== text) { element.textContent = text; }
  }

  function showChange(element, change) {
    if (!element || !change) { return; }
    setText(element.querySelector(".staste-change-text"), change.text);
    setText(element.querySelector(".staste-versus"), change.versus);
    element.classList.remove("staste-up", "staste-down", "staste-flat", "staste-none");
    element.classList.add("staste-" + change.direction);
  }

  // -- a metrica page ----------------------------------------------------------------------

  function applyCards(cards) {
    (cards || []).forEach(function (card) {
      var box = document.querySelector('.staste-stat[data-card="' + card.key + '"]');
      if (!box) { return; }
      setText(box.querySelector("dd"), card.value);
      showChange(box.querySelector(".staste-change"), card.change);
    });
  }

  function applyChart(canvasId, table) {
    var canvas = document.getElementById(canvasId);
    if (!canvas || !table || !table.chart || !window.StasteCharts) { return; }
    window.StasteCharts.update(canvas, table.chart);
  }

  function applyRows(tableId, rows) {
    var table = document.getElementById(tableId);
    if (!table || !rows) { return; }
    var body = table.tBodies[0];
    var fresh = document.createElement("tbody");
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      if (row.css) { tr.className = row.css; }
      var th = document.createElement("th");
      th.scope = "row";
      if (row.url) {
        var link = document.createElement("a");
        link.href = row.url;
        link.textContent = row.label;
        th.appendChild(link);
      } else {
        th.textContent = row.label;
      }
      if (row.partial) {  // as the page marks a bucket still filling up
        var badge = document.createElement("span");
        badge.className = "staste-badge";
        badge.title = labels().partial_title || "This bucket is still filling up";
        badge.textContent = labels().partial || "partial";
        th.appendChild(document.createTextNode(" "));
        th.appendChild(badge);
      }
      tr.appendChild(th);
      var heads = table.tHead && table.tHead.rows.length ? table.tHead.rows[0].cells : [];
      row.values.forEach(function (value, i) {
        var td = document.createElement("td");
        td.className = "staste-number";
        td.textContent = value;
        // A phone shows each number under its column's name (tables of class staste-cards-table).
        var head = heads[i + 1];
        if (head) { td.setAttribute("data-label", head.getAttribute("data-label") || head.textContent.trim()); }
        tr.appendChild(td);
      });
      fresh.appendChild(tr);
    });
    var scroll = body.scrollTop;
    table.replaceChild(fresh, body);
    fresh.scrollTop = scroll;
  }

  function applyMetrica(data) {
    var shown = data.shown || {};
    applyCards(shown.cards);
    if (shown.since) { setText(document.getElementById("staste-since"), shown.since); }
    if (shown.until) { setText(document.getElementById("staste-until"), shown.until); }
    applyChart("staste-line", data.line);
    applyChart("staste-breakdown", data.breakdown);
    applyRows("staste-line-table", shown.line);
    applyRows("staste-breakdown-table", shown.breakdown);
  }

  // -- a page of cards, charts and tables (the Performance pages) --------------------------

  function applyPage(data) {
    var shown = data.shown || {};
    applyCards(shown.cards);
    if (shown.since) { setText(document.getElementById("staste-since"), shown.since); }
    if (shown.until) { setText(document.getElementById("staste-until"), shown.until); }
    Object.keys(shown.charts || {}).forEach(function (id) { applyChart(id, { chart: shown.charts[id] }); });
    Object.keys(shown.tables || {}).forEach(function (id) { applyRows(id, shown.tables[id]); });
  }

  // -- the dashboard -----------------------------------------------------------------------

  function applyDashboard(data) {
    (data.rows || []).forEach(function (row) {
      var tr = document.querySelector('tr.staste-metrica-row[data-metrica="' + row.name + '"]');
      if (!tr) { return; }
      setText(tr.querySelector(".staste-today-value"), row.today);
      setText(tr.querySelector(".staste-all-value"), row.all);
      showChange(tr.querySelector(".staste-change"), row.change);
      var canvas = tr.querySelector("canvas[data-staste-chart]");
      if (canvas && row.spark && window.StasteCharts) { window.StasteCharts.update(canvas, row.spark); }
    });
  }

  function refresh() {
    timer = null;
    if (paused() || inFlight) { return; }
    inFlight = true;
    fetch(config.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        failed = false;
        if (config.kind === "dashboard") { applyDashboard(data); }
        else if (config.kind === "page") { applyPage(data); }
        else { applyMetrica(data); }
        document.documentElement.setAttribute("data-staste-refreshed", String(Date.now()));
      })
      .catch(function () {
        failed = true;  // Redis away or the session over: keep the numbers, try again later
      })
      .then(function () {
        inFlight = false;
        showState();
        schedule(config.interval * 1000);
      });
  }

  function start() {
    config = readConfig();
    if (!config || !config.url || !(config.interval > 0)) { return; }
    button = document.getElementById("staste-live");
    if (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        userPaused = !userPaused;
        showState();
        if (!paused()) { refresh(); }
      });
    }
    document.addEventListener("visibilitychange", function () {
      showState();
      if (paused()) { schedule(0); } else { refresh(); }
    });
    showState();
    schedule(config.interval * 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
