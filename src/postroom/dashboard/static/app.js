// Postroom dashboard: the few behaviours htmx does not cover. No inline handlers (the
// pages' CSP forbids them); everything is wired here by data attributes.
"use strict";
(function () {
  function copyText(text, button) {
    var done = function () {
      var old = button.textContent;
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = old; button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var copy = target.closest("[data-copy]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      if (source) { copyText(source.textContent.trim(), copy); }
      return;
    }
    var tab = target.closest("[data-tab]");
    if (tab) {
      var group = tab.closest("[data-tabs]");
      if (!group) { return; }
      group.querySelectorAll("[data-tab]").forEach(function (t) {
        t.setAttribute("aria-selected", t === tab ? "true" : "false");
      });
      group.querySelectorAll("[data-panel]").forEach(function (p) {
        p.hidden = p.getAttribute("data-panel") !== tab.getAttribute("data-tab");
      });
      return;
    }
    var width = target.closest("[data-width]");
    if (width) {
      var frame = document.getElementById(width.getAttribute("data-target"));
      if (frame) {
        frame.classList.remove("w-phone", "w-tablet", "w-desktop");
        frame.classList.add("w-" + width.getAttribute("data-width"));
      }
    }
  });

  // Tabs are keyboard-usable: arrows move between them.
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (!(target instanceof Element) || !target.matches("[data-tab]")) { return; }
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") { return; }
    var tabs = Array.prototype.slice.call(target.closest("[data-tabs]").querySelectorAll("[data-tab]"));
    var i = tabs.indexOf(target) + (event.key === "ArrowRight" ? 1 : -1);
    var next = tabs[(i + tabs.length) % tabs.length];
    next.focus();
    next.click();
  });
})();

// Upload progress of the suppression import (htmx reports the XHR's progress events).
document.addEventListener("htmx:xhr:progress", function (event) {
  var bar = document.getElementById("import-progress");
  var detail = event.detail;
  if (bar && detail && detail.lengthComputable) {
    bar.hidden = false;
    bar.value = Math.round((detail.loaded / detail.total) * 100);
  }
});
