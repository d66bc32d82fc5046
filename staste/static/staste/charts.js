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
 * and optionally (see staste.charts.spec): "units" {axis: "ms"}, "integer" [axis, ...] (whole
 * ticks), "partial" / "expired" [index, ...] (a bucket still filling up: dashed; expired: a gap),
 * "shares" [percent, ...], "pooled" n (the last slice pools n values), "highlight" index,
 * "links" [url | null, ...] (a click on a slice or bar goes there), "counts" [n, ...] (the events
 * each bar's percentile is read from, in its tooltip), "horizontal" true, "stacked"
 * true (a line chart's datasets stacked as areas: parts of one whole, e.g. database and the rest),
 * "annotations" [{"at": 12.5, "time": "2024-03-10T14:30:00+01:00", "when": "...", "text": "..."}]
 * (notes drawn as vertical markers at bucket position "at", or at "time" on a time axis; the
 * text shows when the pointer is on a marker: see staste.charts.annotations).
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

  // The admin's CSS variables when they exist; elsewhere (a site's own page, light or dark)
  // the colours the page itself gives the chart's box, so titles and legends stay readable.
  function themeColors(canvas) {
    var style = getComputedStyle(canvas || document.body);
    var text = style.color || "#333";
    var background = getComputedStyle(document.body).backgroundColor;
    return {
      text: cssVar("--body-fg", text),
      quiet: cssVar("--body-quiet-color", text),
      grid: cssVar("--hairline-color", withAlpha(text, 0.15)),
      background: cssVar("--body-bg", background && background !== "rgba(0, 0, 0, 0)" ? background : "#fff")
    };
  }

  function withAlpha(rgb, alpha) {
    var parts = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(rgb || "");
    return parts ? "rgba(" + parts[1] + "," + parts[2] + "," + parts[3] + "," + alpha + ")" : "rgba(128,128,128," + alpha + ")";
  }

  // One rule for numbers (staste.adminviews display()): whole numbers with separators, two
  // decimals from 0.01, three significant digits below.
  // Numbers in the page's language, as the server writes them (<html lang="ru">: 1 234,50).
  var LANGUAGE = document.documentElement.lang || "en";
  // A previous period is dashed, the bucket still filling up dotted: never the same line.
  var PREVIOUS_DASH = [8, 4];
  var PARTIAL_DASH = [2, 3];

  function formatNumber(value, decimals) {
    if (value === null || value === undefined || isNaN(value)) { return "—"; }
    if (decimals !== undefined) {
      return value.toLocaleString(LANGUAGE, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
    }
    if (Number.isInteger(value)) { return value.toLocaleString(LANGUAGE); }
    if (Math.abs(value) >= 0.01) { return formatNumber(value, 2); }
    return Number(value.toPrecision(3)).toLocaleString(LANGUAGE, { maximumSignificantDigits: 3 });
  }

  // Words the page translated for the charts (json_script "staste-words"), English otherwise.
  function word(name, fallback) {
    var source = document.getElementById("staste-words");
    if (!source) { return fallback; }
    try { return JSON.parse(source.textContent)[name] || fallback; } catch (error) { return fallback; }
  }

  // -- time axes ----------------------------------------------------------------------------

  // A bucket as staste.formats.LABEL_FORMATS writes it, in the time zone the page shows:
  // "2026", "2026-11", "2026-11-07", "2026-11-07 13:00" (weeks, "2026-W45", are left as they are).
  var BUCKET = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?: (\d{2}):(\d{2}))?)?)?$/;
  var MINUTE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 4320, 10080, 20160];
  var MONTH_STEPS = [1, 2, 3, 6, 12, 24, 60, 120];

  function bucketTimes(labels) {
    if (!labels.length) { return null; }
    var out = [];
    for (var i = 0; i < labels.length; i++) {
      var m = BUCKET.exec(String(labels[i]));
      if (!m) { return null; }
      var t = {
        year: +m[1], month: m[2] ? +m[2] : 1, day: m[3] ? +m[3] : 1, hour: m[4] ? +m[4] : 0, minute: m[5] ? +m[5] : 0,
        kind: m[4] ? "time" : m[3] ? "day" : m[2] ? "month" : "year"
      };
      // Minutes since 1970 of the wall-clock time (UTC arithmetic: no daylight-saving jumps).
      t.minutes = Date.UTC(t.year, t.month - 1, t.day, t.hour, t.minute) / 60000;
      t.months = t.year * 12 + t.month - 1;
      out.push(t);
    }
    return out;
  }

  var dateFormats = {};
  function formatDate(t, withYear) {
    var key = withYear ? "y" : "d";
    if (!dateFormats[key]) {
      var options = { month: "short", day: "numeric", timeZone: "UTC" };
      if (withYear) { options.year = "numeric"; }
      dateFormats[key] = new Intl.DateTimeFormat(LANGUAGE, options);
    }
    return dateFormats[key].format(new Date(t.minutes * 60000));
  }

  function formatMonth(t, withYear) {
    var options = { month: "short", timeZone: "UTC" };
    if (withYear) { options.year = "numeric"; }
    return new Intl.DateTimeFormat(LANGUAGE, options).format(new Date(t.minutes * 60000));
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // The ticks of a time axis with room for ``room`` labels: the buckets on the coarsest round
  // step that fits, labelled with the date where it changes.  {labels: {index: text}}.
  var chosenCache = { times: null, room: 0, found: null };
  function chosenTicks(times, room) {
    if (chosenCache.times === times && chosenCache.room === room) { return chosenCache.found; }
    var kind = times[0].kind;
    var picked = null;
    if (kind === "time" || kind === "day") {
      var first = times[0].minutes;
      var span = times[times.length - 1].minutes - first;
      for (var s = 0; s < MINUTE_STEPS.length && !picked; s++) {
        var step = MINUTE_STEPS[s];
        if (kind === "day" && step < 1440) { continue; }
        if (step % 10080 === 0) {
          // weeks start on Monday (1970-01-05 was one)
          picked = times.map(function (t, i) { return (t.minutes - 4 * 1440) % step === 0 ? i : -1; });
        } else if (span / step + 1 <= room * 1.2) {
          picked = times.map(function (t, i) { return t.minutes % step === 0 ? i : -1; });
        }
        if (picked && picked.filter(function (i) { return i >= 0; }).length > room) { picked = null; }
      }
      if (!picked) {
        for (var ms = 0; ms < MONTH_STEPS.length && !picked; ms++) {
          picked = times.map(function (t, i) {
            return t.day === 1 && t.hour === 0 && t.minute === 0 && t.months % MONTH_STEPS[ms] === 0 ? i : -1;
          });
          if (picked.filter(function (i) { return i >= 0; }).length > room) { picked = null; }
        }
      }
    } else if (kind === "month") {
      for (var k = 0; k < MONTH_STEPS.length && !picked; k++) {
        picked = times.map(function (t, i) { return t.months % MONTH_STEPS[k] === 0 ? i : -1; });
        if (picked.filter(function (i) { return i >= 0; }).length > room) { picked = null; }
      }
    }
    if (!picked) {  // years, or too many of anything: every n-th
      var every = Math.max(1, Math.ceil(times.length / room));
      picked = times.map(function (_, i) { return i % every === 0 ? i : -1; });
    }
    var labels = {};
    var before = null;
    picked.filter(function (i) { return i >= 0; }).forEach(function (i) {
      var t = times[i];
      var newYear = !before || before.year !== t.year;
      var text;
      if (kind === "time") {
        var clock = pad(t.hour) + ":" + pad(t.minute);
        var newDay = !before || before.year !== t.year || before.month !== t.month || before.day !== t.day;
        if (!newDay) { text = clock; }
        else if (t.hour === 0 && t.minute === 0) { text = formatDate(t, newYear && !!before); }
        else { text = [clock, formatDate(t, false)]; }
      } else if (kind === "day") {
        text = t.day === 1 && t.month === 1 || (newYear && before) ? formatDate(t, true) : formatDate(t, false);
      } else if (kind === "month") {
        text = newYear ? formatMonth(t, true) : formatMonth(t, false);
      } else {
        text = String(t.year);
      }
      labels[i] = text;
      before = t;
    });
    chosenCache = { times: times, room: room, found: { labels: labels } };
    return chosenCache.found;
  }

  // Long values (view paths) would push a legend's colour boxes out of the canvas: keep their
  // start and their end (a view's URL name), the tooltip and the table have them whole.
  var LEGEND_CHARS = 30;

  function shorten(text, most) {
    text = String(text);
    most = most || LEGEND_CHARS;
    if (text.length <= most) { return text; }
    var head = Math.ceil((most - 1) / 2);
    return text.slice(0, head) + "…" + text.slice(text.length - (most - 1 - head));
  }

  var REST_COLOR = "#9e9e9e";

  function color(index, alpha) {
    var hex = PALETTE[index % PALETTE.length];
    if (alpha === undefined) { return hex; }
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + ((n >> 16) & 255) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  // A value keeps its colour wherever it is drawn (admin, public charts, before and after a
  // filter): the axis' declared order when the server gives it ("colors"), else a hash of the
  // value's text into the palette; a value whose slot another value of the same chart took
  // first moves on to the next free one.
  function hashSlot(text) {
    var h = 2166136261;
    text = String(text);
    for (var i = 0; i < text.length; i++) { h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0; }
    return h % PALETTE.length;
  }

  function valueSlots(names, declared) {
    var slots = [];
    var taken = {};
    function fixed(j) { return declared && declared[j] !== null && declared[j] !== undefined; }
    // Declared values first, wherever they stand, so that a hashed value never takes their colour.
    names.forEach(function (name, j) {
      if (fixed(j)) { slots[j] = declared[j] % PALETTE.length; taken[slots[j]] = true; }
    });
    names.forEach(function (name, j) {
      if (fixed(j)) { return; }
      var slot = hashSlot(name);
      for (var k = 0; k < PALETTE.length && taken[slot]; k++) { slot = (slot + 1) % PALETTE.length; }
      taken[slot] = true;
      slots[j] = slot;
    });
    return slots;
  }

  function sliceColor(spec, j, alpha) {
    var rest = spec.pooled && j === (spec.labels || []).length - 1;
    var slot = valueSlots(spec.labels || [], spec.colors)[j];
    var base = rest ? REST_COLOR : color(slot);
    var faded = spec.highlight !== undefined && spec.highlight !== null && j !== spec.highlight;
    if (faded) { return rest ? "rgba(158,158,158,0.3)" : color(slot, 0.3); }
    return alpha === undefined || rest ? base : color(slot, alpha);
  }

  function config(spec, canvas) {
    var colors = themeColors(canvas);
    var pie = spec.type === "pie" || spec.type === "doughnut";
    var compact = !!spec.compact;
    var units = spec.units || {};
    var integer = spec.integer || [];
    var partial = spec.partial || [];
    var expired = spec.expired || [];
    var breakdown = !!spec.shares || !!spec.links || spec.horizontal;
    var lineSlots = spec.by_value ? valueSlots((spec.datasets || []).map(function (d) { return d.label; }), spec.colors) : [];
    var datasets = (spec.datasets || []).map(function (dataset, i) {
      var out = { label: dataset.label, data: dataset.data };
      if (pie) {
        out.backgroundColor = dataset.data.map(function (_, j) { return sliceColor(spec, j); });
        out.borderColor = colors.background;
        out.offset = dataset.data.map(function (_, j) { return j === spec.highlight ? 12 : 0; });
      } else if (dataset.previous_of !== undefined) {
        out.borderColor = color(dataset.previous_of, 0.75);
        out.backgroundColor = color(dataset.previous_of, 0);
        out.borderDash = PREVIOUS_DASH;
        out.borderWidth = 1.5;
        out.fill = false;
        out.tension = 0.25;
        out.pointRadius = 0;
        out.spanGaps = true;
        out.yAxisID = dataset.axis || "y";
        out.stasteLabels = dataset.labels || null;
      } else if (spec.type === "bar" && breakdown) {
        // One colour for every bar (the label says which value it is), grey for the pooled rest.
        out.backgroundColor = dataset.data.map(function (_, j) {
          var rest = spec.pooled && j === dataset.data.length - 1;
          var faded = spec.highlight !== undefined && spec.highlight !== null && j !== spec.highlight;
          return rest ? (faded ? "rgba(158,158,158,0.3)" : REST_COLOR) : color(0, faded ? 0.3 : 0.8);
        });
      } else {
        // One line per value of an axis ("by_value"): each in its value's colour.
        var c = spec.by_value ? lineSlots[i] : i;
        out.borderColor = color(c);
        out.backgroundColor = color(c, spec.type === "bar" ? 0.7 : (spec.stacked ? 0.45 : 0.15));  // bars filled; lines tinted
        out.fill = spec.stacked ? (i === 0 ? "origin" : "-1") : spec.type === "line" && (spec.datasets || []).filter(function (d) {
          return d.previous_of === undefined;
        }).length === 1;
        out.tension = 0.25;
        out.pointRadius = dataset.data.map(function (value, j) {
          if (partial.indexOf(j) >= 0) { return compact ? 0 : 4; }
          // A value between two gaps (an average of the one bucket with events) has no line
          // to show it: its point must.
          var lone = value !== null && value !== undefined &&
            (j === 0 || dataset.data[j - 1] === null) && (j === dataset.data.length - 1 || dataset.data[j + 1] === null);
          if (lone) { return 3; }
          return compact || dataset.data.length > 60 ? 0 : 2;
        });
        out.pointBackgroundColor = dataset.data.map(function (_, j) {
          return partial.indexOf(j) >= 0 ? colors.background : color(c);
        });
        // An expired bucket is a gap, not a fall to zero; a bucket still filling up is dashed.
        out.spanGaps = expired.length === 0;
        out.segment = {
          borderDash: function (ctx) { return partial.indexOf(ctx.p1DataIndex) >= 0 ? PARTIAL_DASH : undefined; }
        };
        out.yAxisID = dataset.axis || "y";
      }
      return out;
    });
    function axisTitle(name) {
      var text = (spec.axes && spec.axes[name]) || "";
      if (units[name]) { text += (text ? " " : "") + "(" + units[name] + ")"; }
      return { display: !!text, text: text, color: colors.quiet };
    }
    function valueTicks(name) {
      var ticks = { color: colors.quiet, callback: function (value) { return formatNumber(value); } };
      if (integer.indexOf(name) >= 0) { ticks.precision = 0; }
      return ticks;
    }
    var scales = {};
    var restText = null;  // the pooled rest's number, drawn at the axis' end when its bar runs off
    if (!pie) {
      var labelTicks = { color: colors.quiet, maxRotation: 0, autoSkip: true, autoSkipPadding: 16 };
      if (spec.horizontal) {
        // Chart.js gives a side axis at most half the width: a label longer than that is cut.
        labelTicks.callback = function (value) {
          var room = Math.max(10, Math.floor((this.chart.width / 2 - 16) / 6.5));
          return shorten(this.getLabelForValue(value), Math.min(48, room));
        };
        labelTicks.autoSkip = false;
        scales.y = { display: !compact, ticks: labelTicks, grid: { display: false } };
        scales.x = { display: !compact, beginAtZero: true, ticks: valueTicks("y"), grid: { color: colors.grid }, title: axisTitle("y") };
        // The pooled rest can dwarf the values ranked above it: the axis is scaled to those,
        // and the rest's bar runs off its end, its number written there (restLayer).
        var data = ((spec.datasets || [])[0] || {}).data || [];
        if (spec.pooled && data.length > 1) {
          var largest = Math.max.apply(null, data.slice(0, -1).map(function (v) { return v || 0; }));
          if (data[data.length - 1] > largest * 1.5) {
            var step = Math.pow(10, Math.floor(Math.log10(largest * 1.2)));
            scales.x.max = Math.ceil(largest * 1.2 / (step / 2)) * (step / 2);
            restText = formatNumber(data[data.length - 1]);
            var restLabel = labelTicks.callback;
            labelTicks.callback = function (value, index) {
              var text = restLabel.call(this, value, index);
              return index === data.length - 1 ? text + " ▸" : text;
            };
          }
        }
      } else {
        var times = spec.type === "line" ? bucketTimes(spec.labels || []) : null;
        if (times) {
          // Time buckets: ticks on round times (every 6 hours, every midnight, every month...),
          // the date written where it changes: 30 days by hour reads as dates, never as a
          // run of hours that seems to go backwards.
          labelTicks.autoSkip = false;
          labelTicks.callback = function (value, index) {
            var shown = chosenTicks(times, Math.max(2, Math.floor(this.chart.width / (compact ? 120 : 72))));
            return shown.labels[index] === undefined ? null : shown.labels[index];
          };
        }
        scales.x = { display: !compact, ticks: labelTicks, grid: { color: colors.grid } };
        scales.y = { display: !compact, beginAtZero: true, ticks: valueTicks("y"), grid: { color: colors.grid }, title: axisTitle("y") };
        if (spec.stacked) { scales.y.stacked = true; }
      }
      if (datasets.some(function (d) { return d.yAxisID === "y1"; })) {
        scales.y1 = {
          display: !compact,
          beginAtZero: true,
          position: "right",
          ticks: valueTicks("y1"),
          grid: { drawOnChartArea: false },
          title: axisTitle("y1")
        };
      }
    }
    var links = spec.links || [];
    return {
      type: spec.type === "pie" ? "pie" : spec.type,
      data: { labels: spec.labels || [], datasets: datasets },
      plugins: [annotationLayer, restLayer],
      options: {
        // Numbers on axes and in tooltips in the page's language (<html lang="ru">: 1 234,5).
        locale: LANGUAGE,
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: spec.horizontal ? "y" : "x",
        interaction: { mode: pie || breakdown ? "nearest" : "index", intersect: pie || breakdown },
        onClick: function (event, elements) {
          if (!elements.length) { return; }
          var link = links[elements[0].index];
          // Only the page's own links (a path on this site), never a URL from elsewhere.
          if (typeof link === "string" && link.charAt(0) === "/" && link.charAt(1) !== "/") {
            window.location.assign(link);
          }
        },
        onHover: function (event, elements) {
          var target = event.native && event.native.target;
          if (target) { target.style.cursor = elements.length && links[elements[0].index] ? "pointer" : "default"; }
        },
        plugins: {
          stasteRest: { text: restText },
          legend: {
            display: !compact && (pie || datasets.length > 1 || (spec.type === "line" && partial.length > 0)),
            onClick: function (event, item, legend) {
              if (item.datasetIndex === -1) { return; }  // the partial bucket's key: nothing to hide
              var base = pie ? Chart.overrides.pie.plugins.legend.onClick : Chart.defaults.plugins.legend.onClick;
              base.call(this, event, item, legend);
            },
            position: pie ? "bottom" : "top",
            labels: {
              color: colors.text,
              boxWidth: 12,
              generateLabels: function (chart) {
                var base = pie ? Chart.overrides.pie.plugins.legend.labels.generateLabels : Chart.defaults.plugins.legend.labels.generateLabels;
                var items = base(chart).map(function (item) { item.text = shorten(item.text); return item; });
                // Two kinds of broken line, told apart: a previous period is dashed (its item
                // above shows it), the bucket still filling up dotted, and said so here.
                if (!pie && spec.type === "line" && partial.length) {
                  items.push({
                    text: word("partial", "partial: still counting"), fillStyle: "rgba(0,0,0,0)",
                    strokeStyle: colors.quiet, lineDash: PARTIAL_DASH, lineWidth: 2, fontColor: colors.text,
                    hidden: false, datasetIndex: -1
                  });
                }
                return items;
              }
            }
          },
          title: { display: !compact && !!spec.title, text: spec.title || "", color: colors.text },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var name = pie || breakdown ? ctx.label : ctx.dataset.label;
                // A previous period's point names its own bucket ("total (previous period) 2024-03-09: 12").
                var own = ctx.dataset.stasteLabels && ctx.dataset.stasteLabels[ctx.dataIndex];
                if (own) { name += " " + own; }
                var axis = pie || breakdown ? "y" : (ctx.dataset.yAxisID || "y");
                var value = pie ? ctx.parsed : (spec.horizontal ? ctx.parsed.x : ctx.parsed.y);
                var text = name + ": " + formatNumber(value) + (units[axis] ? " " + units[axis] : "");
                if (spec.shares && spec.shares[ctx.dataIndex] !== null && spec.shares[ctx.dataIndex] !== undefined) {
                  text += " (" + formatNumber(spec.shares[ctx.dataIndex], 1) + "%)";
                }
                // A percentile is only as telling as the events it is read from: say how many.
                if (spec.counts && spec.counts[ctx.dataIndex] !== null && spec.counts[ctx.dataIndex] !== undefined) {
                  text += " · " + formatNumber(spec.counts[ctx.dataIndex]) + " " + word("events", "events");
                }
                return text;
              },
              footer: function (items) {
                if (items.length && partial.indexOf(items[0].dataIndex) >= 0) { return word("partial", "partial: still counting"); }
                return "";
              }
            }
          }
        },
        scales: scales
      }
    };
  }

  // -- annotations: a vertical dashed marker per note, its text in a box while pointed at ------

  var NOTE_TEXT_CHARS = 90;

  function notesOf(chart) {
    var spec = chart.canvas.__stasteSpec || {};
    return spec.type === "line" && Array.isArray(spec.annotations) ? spec.annotations : [];
  }

  // Where a note falls on the x axis: by its time on a time axis, else between the points of
  // the buckets it falls in ("at" 12.5: halfway from bucket 12's point to bucket 13's).
  function noteX(chart, note) {
    var scale = chart.scales.x;
    if (!scale) { return null; }
    if (scale.type === "time" || scale.type === "timeseries") {
      var moment = Date.parse(note.time);
      return isNaN(moment) ? null : scale.getPixelForValue(moment);
    }
    var count = (chart.data.labels || []).length;
    var index = Math.floor(note.at);
    if (!(index >= 0 && index < count)) { return null; }
    var here = scale.getPixelForValue(index);
    var step = count > 1 ? (index + 1 < count ? scale.getPixelForValue(index + 1) - here : here - scale.getPixelForValue(index - 1)) : 0;
    return here + (note.at - index) * step;
  }

  function noteColor(chart) {
    return themeColors(chart.canvas).text;
  }

  // The pooled rest's bar, when it runs off an axis scaled to the values ranked above it,
  // carries its number at the axis' end: the cut bar alone would not say how far it goes.
  var restLayer = {
    id: "stasteRest",
    afterDatasetsDraw: function (chart, args, options) {
      var text = options && options.text;
      var area = chart.chartArea;
      var meta = chart.getDatasetMeta(0);
      var bar = meta && meta.data[meta.data.length - 1];
      if (!text || !area || !bar || !chart.isDatasetVisible(0)) { return; }
      var colors = themeColors(chart.canvas);
      var ctx = chart.ctx;
      ctx.save();
      ctx.font = "600 12px system-ui, -apple-system, 'Segoe UI', sans-serif";
      var width = ctx.measureText(text).width + 12;
      var height = Math.max(14, Math.min(20, (bar.height || 16) - 2));
      var x = area.right - width - 3;
      ctx.fillStyle = colors.background;
      ctx.globalAlpha = 0.92;
      ctx.fillRect(x, bar.y - height / 2, width, height);
      ctx.globalAlpha = 1;
      ctx.fillStyle = colors.text;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText(text, x + width / 2, bar.y);
      ctx.restore();
    }
  };

  var annotationLayer = {
    id: "stasteAnnotations",
    afterDatasetsDraw: function (chart) {
      var notes = notesOf(chart);
      var area = chart.chartArea;
      if (!notes.length || !area) { return; }
      var ctx = chart.ctx;
      var compact = !!(chart.canvas.__stasteSpec || {}).compact;
      var ink = noteColor(chart);
      ctx.save();
      chart.$stasteNoteX = notes.map(function (note, k) {
        var x = noteX(chart, note);
        if (x === null || x < area.left - 0.5 || x > area.right + 0.5) { return null; }
        var pointed = chart.$stasteNote === k;
        ctx.globalAlpha = pointed ? 1 : 0.7;
        ctx.strokeStyle = ink;
        ctx.lineWidth = pointed ? 2 : 1.25;
        ctx.setLineDash(compact ? [2, 2] : [5, 3]);
        ctx.beginPath();
        ctx.moveTo(x, area.top);
        ctx.lineTo(x, area.bottom);
        ctx.stroke();
        if (!compact) {  // a small flag on top, to point at (turned left at the right edge)
          var side = x + 8 > area.right ? -8 : 8;
          ctx.setLineDash([]);
          ctx.fillStyle = ink;
          ctx.beginPath();
          ctx.moveTo(x, area.top);
          ctx.lineTo(x + side, area.top + 4.5);
          ctx.lineTo(x, area.top + 9);
          ctx.closePath();
          ctx.fill();
        }
        return x;
      });
      var shown = chart.$stasteNote;
      if (shown !== undefined && shown !== null && notes[shown] && chart.$stasteNoteX[shown] !== null) {
        drawNoteBox(chart, notes[shown], chart.$stasteNoteX[shown]);
      }
      ctx.restore();
    },
    afterEvent: function (chart, args) {
      var event = args.event;
      var notes = notesOf(chart);
      var positions = chart.$stasteNoteX || [];
      var found = null;
      if (event.type !== "mouseout" && notes.length && chart.chartArea) {
        var area = chart.chartArea;
        var best = 7;  // pixels either side of a marker that point at it
        if (event.y >= area.top - 2 && event.y <= area.bottom) {
          positions.forEach(function (x, k) {
            if (x !== null && x !== undefined && Math.abs(x - event.x) <= best) { best = Math.abs(x - event.x); found = k; }
          });
        }
      }
      if (found !== (chart.$stasteNote === undefined ? null : chart.$stasteNote)) {
        chart.$stasteNote = found;
        if (found === null) {
          chart.canvas.removeAttribute("data-staste-note");
        } else {
          chart.canvas.setAttribute("data-staste-note", notes[found].text);
        }
        args.changed = true;
      }
    }
  };

  function drawNoteBox(chart, note, x) {
    var ctx = chart.ctx;
    var area = chart.chartArea;
    var text = shorten(note.text, NOTE_TEXT_CHARS);
    var when = note.when || "";
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
    ctx.font = "bold 12px " + Chart.defaults.font.family;
    var width = ctx.measureText(text).width;
    ctx.font = "11px " + Chart.defaults.font.family;
    width = Math.max(width, ctx.measureText(when).width) + 16;
    var height = when ? 38 : 24;
    var left = Math.min(Math.max(x + 10, area.left), area.right - width);
    if (x + 10 + width > area.right) { left = Math.max(area.left, x - 10 - width); }
    var top = area.top + 12;
    // The page's colours inverted: a dark box on a light page, a light one on a dark page.
    var colors = themeColors(chart.canvas);
    ctx.fillStyle = colors.text;
    ctx.globalAlpha = 0.92;
    ctx.beginPath();
    if (ctx.roundRect) { ctx.roundRect(left, top, width, height, 5); } else { ctx.rect(left, top, width, height); }
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.fillStyle = colors.background;
    ctx.textBaseline = "top";
    ctx.font = "bold 12px " + Chart.defaults.font.family;
    ctx.fillText(text, left + 8, top + 6);
    if (when) {
      ctx.font = "11px " + Chart.defaults.font.family;
      ctx.globalAlpha = 0.8;
      ctx.fillText(when, left + 8, top + 22);
    }
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
    var chart = new Chart(canvas, config(spec, canvas));
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
    var fresh = config(spec, canvas);
    // The options hold what depends on the numbers' order (links, partial buckets, units).
    chart.options = fresh.options;
    chart.data.labels = fresh.data.labels;
    fresh.data.datasets.forEach(function (dataset, i) {
      var current = chart.data.datasets[i];
      current.label = dataset.label;
      current.data = dataset.data;
      if (dataset.backgroundColor !== undefined) { current.backgroundColor = dataset.backgroundColor; }
      current.stasteLabels = dataset.stasteLabels;
      current.pointRadius = dataset.pointRadius;
      current.pointBackgroundColor = dataset.pointBackgroundColor;
      current.segment = dataset.segment;
      current.spanGaps = dataset.spanGaps;
      current.offset = dataset.offset;
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
