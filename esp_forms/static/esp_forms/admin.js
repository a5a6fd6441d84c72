/* esp_forms admin: copy buttons and drag-to-reorder for the fields inline.
   Plain script, no dependencies: the admin's own jQuery is only needed for the
   "formset:added" event, which Django also dispatches as a native DOM event. */
(function () {
  "use strict";

  function copyText(button) {
    var text = button.getAttribute("data-esp-copy");
    var done = function () {
      var label = button.textContent;
      button.textContent = "✓";
      setTimeout(function () { button.textContent = label; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    // http:// origins other than localhost have no clipboard API: select a temporary field.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); done(); } finally { area.remove(); }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-esp-copy]");
    if (button) {
      event.preventDefault();
      copyText(button);
    }
  });

  // --- sortable inline: rows carry an "order" input; dragging a row renumbers them all. ---

  function rows(tbody) {
    return Array.prototype.filter.call(tbody.querySelectorAll("tr.form-row"), function (row) {
      return !row.classList.contains("empty-form");
    });
  }

  function orderInput(row) {
    return row.querySelector("td.field-order input");
  }

  function hasContent(row) {
    // Untouched extra rows stay empty, or Django would treat them as filled in and validate them.
    var original = row.classList.contains("has_original");
    var name = row.querySelector("td.field-name input");
    return original || (name && name.value.trim() !== "");
  }

  function renumber(tbody) {
    var n = 0;
    rows(tbody).forEach(function (row) {
      var input = orderInput(row);
      if (input && hasContent(row)) { input.value = n++; }
    });
  }

  function nextOrder(tbody) {
    var max = -1;
    rows(tbody).forEach(function (row) {
      var input = orderInput(row);
      var value = input ? parseInt(input.value, 10) : NaN;
      if (!isNaN(value) && value > max) { max = value; }
    });
    return max + 1;
  }

  function addHandle(row, tbody) {
    var cell = row.querySelector("td.field-order");
    if (!cell || row.querySelector(".esp-forms-handle")) { return; }
    var handle = document.createElement("span");
    handle.className = "esp-forms-handle";
    handle.textContent = "☰";
    // The tooltip in the admin's language, from the change form template.
    handle.title = tbody.closest("[data-esp-drag-label]") ?
      tbody.closest("[data-esp-drag-label]").getAttribute("data-esp-drag-label") :
      "Drag to reorder";
    handle.setAttribute("aria-hidden", "true");
    cell.insertBefore(handle, cell.firstChild);
    handle.addEventListener("mousedown", function () { row.draggable = true; });
    row.addEventListener("dragstart", function (event) {
      row.classList.add("esp-forms-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", "");
    });
    row.addEventListener("dragend", function () {
      row.classList.remove("esp-forms-dragging");
      row.draggable = false;
      renumber(tbody);
    });
    row.addEventListener("dragover", function (event) {
      var dragging = tbody.querySelector("tr.esp-forms-dragging");
      if (!dragging || dragging === row) { return; }
      event.preventDefault();
      var box = row.getBoundingClientRect();
      var after = event.clientY > box.top + box.height / 2;
      tbody.insertBefore(dragging, after ? row.nextSibling : row);
    });
  }

  function setUp(group) {
    var tbody = group.querySelector("tbody");
    if (!tbody) { return; }
    rows(tbody).forEach(function (row) { addHandle(row, tbody); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".esp-forms-sortable").forEach(setUp);
  });

  document.addEventListener("formset:added", function (event) {
    var row = event.target;
    var group = row.closest(".esp-forms-sortable");
    if (!group) { return; }
    var tbody = group.querySelector("tbody");
    var input = orderInput(row);
    if (input) { input.value = nextOrder(tbody); }
    addHandle(row, tbody);
  });
})();
