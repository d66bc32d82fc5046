/*
 * staste charts: draws every <canvas data-staste-chart="ID"> from the JSON that Django's
 * json_script filter put in <script type="application/json" id="ID">.  No inline script is
 * needed, so pages work under a strict Content-Security-Policy.
 *
 * Spec (built server-side by staste.charts.spec):
 *   {"type": "line" | "pie" | "bar",
 *    "title": "...", "labels": [...],
 *    "datasets": [{"label": "...", "data": [number | null, ...], "axis": "y" | "y1",
 *                  "previous_of": 0, "labels": [...]}],   (optional: the previous period of
 *                  dataset 0, drawn dashed in its colour; "labels" name its own buckets)
 *    "axes": {"y": "title of the left axis", "y1": "title of the right axis"},
 *    "compact": true}   (optional: a sparkline without axes, legend nor title, e.g. the admin dashboard)
 *
 * window.StasteCharts.draw(canvas, spec) redraws a canvas with a new spec;
 * window.StasteCharts.update(canvas, spec) puts new numbers into the chart already drawn (the
 * live refresh: no flicker, the same Chart instance); every drawn canvas gets
 * data-staste-drawn="1".
 */
(function () {
  "use strict";

  var PALETTE = [
    "#417690", "#e07b39", "#5b9b4a", "#b5446e", "#7a5ea8",
    "#c9a227", "#2f8f8f", "#9c5b3b", "#6b7fd7", "#8a8a8a"
  ];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name);
    return (value && value.trim()) || fallback;
  }

  function themeColors() {
    return {
      text: cssVar("--body-fg", "#333"),
      quiet: cssVar("--body-quiet-color", "#666"),
      grid: cssVar("--hairline-color", "rgba(0,0,0,0.1)"),
      background: cssVar("--body-bg", "#fff")
    };
  }

  function color(index, alpha) {
    var hex = PALETTE[index % PALETTE.length];
    if (alpha === undefined) { return hex; }
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  function config(spec) {
    var colors = themeColors();
    var pie = spec.type === "pie" || spec.type === "doughnut";
    var compact = !!spec.compact;
    var datasets = (spec.datasets || []).map(function (dataset, i) {
      var out = { label: dataset.label, data: dataset.data };
      if (pie) {
        out.backgroundColor = dataset.data.map(function (_, j) { return color(j); });
        out.borderColor = colors.background;
      } else if (dataset.previous_of !== undefined) {
        out.borderColor = color(dataset.previous_of, 0.75);
        out.backgroundColor = color(dataset.previous_of, 0);
        out.borderDash = [6, 4];
        out.borderWidth = 1.5;
        out.fill = false;
        out.tension = 0.25;
        out.pointRadius = 0;
        out.spanGaps = true;
        out.yAxisID = dataset.axis || "y";
        out.stasteLabels = dataset.labels || null;
      } else {
        out.borderColor = color(i);
        out.backgroundColor = color(i, spec.type === "bar" ? 0.7 : 0.15);  // bars are filled; lines tinted
        out.fill = spec.type === "line" && (spec.datasets || []).filter(function (d) {
          return d.previous_of === undefined;
        }).length === 1;
        out.tension = 0.25;
        out.pointRadius = compact || dataset.data.length > 60 ? 0 : 2;
        out.spanGaps = true;
        out.yAxisID = dataset.axis || "y";
      }
      return out;
    });
    var scales = {};
    if (!pie) {
      scales.x = { display: !compact, ticks: { color: colors.quiet, maxRotation: 0, autoSkip: true, autoSkipPadding: 16 }, grid: { color: colors.grid } };
      scales.y = {
        display: !compact,
        beginAtZero: true,
        ticks: { color: colors.quiet },
        grid: { color: colors.grid },
        title: { display: !!(spec.axes && spec.axes.y), text: (spec.axes && spec.axes.y) || "", color: colors.quiet }
      };
      if (datasets.some(function (d) { return d.yAxisID === "y1"; })) {
        scales.y1 = {
          display: !compact,
          beginAtZero: true,
          position: "right",
          ticks: { color: colors.quiet },
          grid: { drawOnChartArea: false },
          title: { display: !!(spec.axes && spec.axes.y1), text: (spec.axes && spec.axes.y1) || "", color: colors.quiet }
        };
      }
    }
    return {
      type: spec.type === "pie" ? "pie" : spec.type,
      data: { labels: spec.labels || [], datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: pie ? "nearest" : "index", intersect: false },
        plugins: {
          legend: { display: !compact && (pie || datasets.length > 1), labels: { color: colors.text } },
          title: { display: !compact && !!spec.title, text: spec.title || "", color: colors.text },
          tooltip: { callbacks: { label: tooltipLabel } }
        },
        scales: scales
      }
    };
  }

  // A previous period's point names its own bucket ("total (previous period) 2024-03-09: 12").
  function tooltipLabel(context) {
    var dataset = context.dataset;
    var value = context.formattedValue;
    var own = dataset.stasteLabels && dataset.stasteLabels[context.dataIndex];
    return (dataset.label || "") + (own ? " " + own : "") + ": " + value;
  }

  var charts = new Map();

  // A box may carry its height as data-staste-height (the template tags do): set through the
  // CSSOM, which a strict Content-Security-Policy allows where a style attribute is refused.
  function sizeBox(canvas) {
    var box = canvas.parentNode;
    var height = box && box.getAttribute && box.getAttribute("data-staste-height");
    if (height) {
      box.style.position = "relative";
      box.style.height = height;
    }
  }

  function draw(canvas, spec) {
    if (typeof Chart === "undefined") {
      canvas.setAttribute("data-staste-error", "Chart.js is not loaded");
      return null;
    }
    sizeBox(canvas);
    var previous = charts.get(canvas);
    if (previous) { previous.destroy(); }
    canvas.__stasteSpec = spec;
    var chart = new Chart(canvas, config(spec));
    charts.set(canvas, chart);
    canvas.setAttribute("data-staste-drawn", "1");
    return chart;
  }

  function sameShape(chart, spec) {
    var datasets = spec.datasets || [];
    return chart.config.type === (spec.type === "pie" ? "pie" : spec.type) &&
      chart.data.datasets.length === datasets.length;
  }

  function update(canvas, spec) {
    var chart = charts.get(canvas);
    if (!chart || !sameShape(chart, spec)) { return draw(canvas, spec); }
    var fresh = config(spec);
    chart.data.labels = fresh.data.labels;
    fresh.data.datasets.forEach(function (dataset, i) {
      var current = chart.data.datasets[i];
      current.label = dataset.label;
      current.data = dataset.data;
      if (dataset.backgroundColor !== undefined) { current.backgroundColor = dataset.backgroundColor; }
      current.stasteLabels = dataset.stasteLabels;
      current.pointRadius = dataset.pointRadius;
    });
    canvas.__stasteSpec = spec;
    chart.update("none");
    return chart;
  }

  function readSpec(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-staste-chart"));
    if (!source) { return null; }
    try {
      return JSON.parse(source.textContent);
    } catch (error) {
      canvas.setAttribute("data-staste-error", String(error));
      return null;
    }
  }

  function drawAll(root) {
    var canvases = (root || document).querySelectorAll("canvas[data-staste-chart]");
    Array.prototype.forEach.call(canvases, function (canvas) {
      var spec = readSpec(canvas);
      if (spec) { draw(canvas, spec); }
    });
  }

  function redrawForTheme() {
    charts.forEach(function (chart, canvas) { draw(canvas, canvas.__stasteSpec); });
  }

  window.StasteCharts = { draw: draw, update: update, drawAll: drawAll, config: config };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  } else {
    drawAll();
  }
  // The admin's theme toggle changes data-theme on <html>; follow it, and the OS setting.
  new MutationObserver(redrawForTheme).observe(document.documentElement, {
    attributes: true, attributeFilter: ["data-theme"]
  });
  if (window.matchMedia) {
    var media = window.matchMedia("(prefers-color-scheme: dark)");
    if (media.addEventListener) { media.addEventListener("change", redrawForTheme); }
  }
})();
