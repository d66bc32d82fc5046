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

  document.addEventListener("change", function (event) {
    var field = event.target;
    var applies = field.tagName === "SELECT" || (field.tagName === "INPUT" && field.type === "checkbox");
    if (!applies || !field.form || !field.form.classList.contains("staste-controls")) { return; }
    // A filter to one value leaves nothing to break down on its axis: the breakdown moves on
    // to the next axis (as a click on a slice does), unless the axis is hierarchical.
    var filter = field.closest ? field.closest(".staste-filter") : null;
    var by = document.getElementById("staste-by");
    if (filter && by && field.value !== "" && !filter.hasAttribute("data-hierarchical") &&
        by.value === filter.getAttribute("data-axis")) {
      by.disabled = true;
    }
    if (field.form.requestSubmit) {
      field.form.requestSubmit();
    } else {
      dropEmpty(field.form);
      field.form.submit();
    }
  });
})();
