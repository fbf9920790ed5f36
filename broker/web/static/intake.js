// Refreshes the live part of the intake queue every few seconds, without a page reload.
// Forms and links work without it; it only saves a reload. No inline script is needed
// (the pages' Content-Security-Policy allows scripts from this origin only).
(function () {
  "use strict";
  var live = document.getElementById("live-queue");
  if (!live) { return; }
  var url = live.getAttribute("data-refresh-url");
  var seconds = parseInt(live.getAttribute("data-refresh-seconds"), 10) || 5;
  var announce = document.getElementById("queue-announce");

  function count() {
    var table = live.querySelector("table[data-count]");
    return table ? parseInt(table.getAttribute("data-count"), 10) : 0;
  }

  function refresh() {
    // Leave the table alone while someone is using a control inside it.
    if (live.contains(document.activeElement) && document.activeElement !== document.body) {
      return;
    }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 303) {
          window.location.assign("/intake/sign-in");
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null || html === undefined) { return; }
        var before = count();
        live.innerHTML = html;
        var after = count();
        if (announce && after > before) {
          announce.textContent = (after - before) + " new alert" + (after - before === 1 ? "" : "s") + " in the queue.";
        }
      })
      .catch(function () { /* the next tick tries again */ });
  }

  window.setInterval(refresh, seconds * 1000);
}());
