/*
 * staste admin pages: a dropdown or checkbox change applies at once.  Empty choices ("All") are left out
 * of the query string, so URLs stay short and every view stays a plain bookmarkable GET.
 */
(function () {
  "use strict";

  function dropEmpty(form) {
    Array.prototype.forEach.call(form.elements, function (field) {
      if ((field.tagName === "SELECT" || field.type === "hidden") && field.value === "") {
        field.disabled = true;
      }
    });
    // Selects outside the form (form="...") belong to it as well.
    Array.prototype.forEach.call(document.querySelectorAll("select[form='" + form.id + "']"), function (field) {
      if (field.value === "") { field.disabled = true; }
    });
  }

  document.addEventListener("submit", function (event) {
    if (event.target.classList && event.target.classList.contains("staste-controls")) {
      dropEmpty(event.target);
    }
  });

  // A metrica that keeps only some combinations of axes (Metrica(combinations=...)): the kept
  // sets, read from the page.  A filter chosen disables the breakdowns it would leave unkept, and
  // a breakdown so excluded is replaced by the first one still kept (or none) before the page asks.
  function keptSets() {
    var node = document.getElementById("staste-kept-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function isKept(sets, axes) {
    return sets.some(function (set) {
      return axes.every(function (axis) { return set.indexOf(axis) !== -1; });
    });
  }

  function excludeBreakdowns(form) {
    var kept = keptSets();
    var by = document.getElementById("staste-by");
    if (!kept || !by) { return; }
    var filtered = [];
    Array.prototype.forEach.call(form.querySelectorAll(".staste-filter"), function (box) {
      var axis = box.getAttribute("data-axis");
      var given = Array.prototype.some.call(box.querySelectorAll("select, input[type=hidden]"), function (field) {
        return !field.disabled && field.value !== "";
      });
      if (given) { filtered.push(axis); }
    });
    var firstKept = null;
    Array.prototype.forEach.call(by.options, function (option) {
      var axis = option.value;
      var plain = filtered.indexOf(axis) !== -1 && kept.hierarchical.indexOf(axis) === -1;
      var axes = filtered.indexOf(axis) === -1 ? filtered.concat([axis]) : filtered;
      option.disabled = plain || !isKept(kept.sets, axes);
      if (!option.disabled && firstKept === null) { firstKept = option; }
    });
    var chosen = by.options[by.selectedIndex];
    if (chosen && chosen.disabled) {
      if (firstKept) { firstKept.selected = true; } else { by.disabled = true; }
    }
  }

  document.addEventListener("change", function (event) {
    var field = event.target;
    var applies = field.tagName === "SELECT" || (field.tagName === "INPUT" && field.type === "checkbox");
    if (!applies || !field.form || !field.form.classList.contains("staste-controls")) { return; }
    // A filter to one value leaves nothing to break down on its axis: the breakdown moves on
    // to the next axis (as a click on a slice does), unless the axis is hierarchical; any other
    // filter may exclude breakdowns whose counters are not kept (Metrica(combinations=...)).
    var filter = field.closest ? field.closest(".staste-filter") : null;
    var by = document.getElementById("staste-by");
    if (filter && by && field.value !== "" && !filter.hasAttribute("data-hierarchical") &&
        by.value === filter.getAttribute("data-axis")) {
      by.disabled = true;
    } else if (filter) {
      excludeBreakdowns(field.form);
    }
    if (field.form.requestSubmit) {
      field.form.requestSubmit();
    } else {
      dropEmpty(field.form);
      field.form.submit();
    }
  });
})();
