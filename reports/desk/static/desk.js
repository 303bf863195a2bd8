/* charwatch review desk: keyboard shortcuts. Every action is a plain form that works
   without this file; the shortcuts only move a cursor, tick boxes and press the page's
   own buttons and links. */
(function () {
  "use strict";
  var page = document.body.getAttribute("data-page");
  var help = document.getElementById("help");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#queue-table tr.row"));
  var cursor = -1;

  function typing(el) {
    if (!el) { return false; }
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function press(key) {
    var el = document.querySelector('[data-key="' + key + '"]');
    if (!el) { return false; }
    el.click();
    return true;
  }

  function moveTo(i) {
    if (!rows.length) { return; }
    i = Math.max(0, Math.min(rows.length - 1, i));
    if (cursor >= 0 && rows[cursor]) { rows[cursor].classList.remove("cursor"); }
    cursor = i;
    rows[i].classList.add("cursor");
    rows[i].scrollIntoView({ block: "nearest" });
  }

  function box(i) {
    return rows[i] ? rows[i].querySelector('input[type="checkbox"]') : null;
  }

  function ticked() {
    return rows.filter(function (r) {
      var b = r.querySelector('input[type="checkbox"]');
      return b && b.checked;
    }).length;
  }

  function queueKey(key) {
    if (key === "j") { moveTo(cursor + 1); return true; }
    if (key === "k") { moveTo(cursor - 1); return true; }
    if (key === "x" && cursor >= 0) {
      var b = box(cursor);
      if (b) { b.checked = !b.checked; }
      return true;
    }
    if ((key === "o" || key === "Enter") && cursor >= 0) {
      var a = rows[cursor].querySelector("a.open");
      if (a) { a.click(); }
      return true;
    }
    if (key === "/") {
      var q = document.getElementById("q");
      if (q) { q.focus(); q.select(); }
      return true;
    }
    if (key === "c" || key === "r" || key === "n") {
      if (!ticked() && cursor >= 0 && box(cursor)) { box(cursor).checked = true; }
      if (!ticked()) { return true; }
      return press(key);
    }
    return false;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) { return; }
    var key = ev.key;
    var done = false;
    if (key === "?") {
      if (help) { help.hidden = !help.hidden; }
      done = true;
    } else if (key === "Escape" && help && !help.hidden) {
      help.hidden = true;
      done = true;
    } else if (page === "queue") {
      done = queueKey(key);
    } else if (page === "detection") {
      done = ["c", "r", "n", "j", "k", "u"].indexOf(key) !== -1 && press(key);
    }
    if (done) { ev.preventDefault(); }
  });
  document.documentElement.setAttribute("data-desk-js", "1");
})();
