/*
 * Live refresh of the funnel and retention pages: while their range reaches today, the page
 * carries <script type="application/json" id="staste-cohorts-live"> ({"interval": seconds,
 * "labels": {...}}); every interval this fetches the page's own URL again and puts its
 * #staste-report in place (the form, and what the user is typing, stay as they are).  Paused
 * while the tab is hidden, and by the button.  No inline script: the page loads this file.
 */
(function () {
  "use strict";
  var source = document.getElementById("staste-cohorts-live");
  if (!source) { return; }
  var config;
  try { config = JSON.parse(source.textContent); } catch (error) { return; }
  var button = document.getElementById("staste-cohorts-live-button");
  var paused = false;
  var labels = config.labels || {};

  function show() {
    if (!button) { return; }
    button.hidden = false;
    button.textContent = paused ? (labels.paused || "live · paused") : (labels.live || "live");
    button.setAttribute("aria-pressed", paused ? "false" : "true");
    button.classList.toggle("staste-paused", paused);
  }

  function refresh() {
    if (paused || document.hidden) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("staste-report");
        var report = document.getElementById("staste-report");
        if (fresh && report) { report.replaceChildren.apply(report, Array.prototype.slice.call(fresh.childNodes)); }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  if (button) {
    button.addEventListener("click", function () { paused = !paused; show(); if (!paused) { refresh(); } });
  }
  show();
  window.setInterval(refresh, Math.max(1, Number(config.interval) || 5) * 1000);
})();
