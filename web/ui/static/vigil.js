// vigil's operator page: live countdowns to the next escalation, and a
// refresh of the page's content every 15 s while nobody is typing.
(function () {
  "use strict";

  function rough(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 172800) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var left = Date.parse(el.getAttribute("datetime")) - now;
      el.textContent = left >= 0 ? "in " + rough(left) : "overdue by " + rough(left);
    });
  }

  // busy is true while someone types a comment or a token.
  function busy() {
    var a = document.activeElement;
    return !!a && a.tagName === "INPUT" && (a.type === "text" || a.type === "password");
  }

  function refresh() {
    if (document.hidden || busy() || !document.getElementById("incidents")) return;
    fetch(window.location.pathname, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html || busy()) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("content");
        if (fresh && fresh.querySelector("#incidents")) {
          document.getElementById("content").replaceWith(fresh);
          var at = doc.getElementById("refreshed");
          var here = document.getElementById("refreshed");
          if (at && here) here.replaceWith(at);
          tick();
        }
      })
      .catch(function () {});
  }

  // Forms that change something outside vigil ask first (data-confirm).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });

  // A link to an incident (#incident-…, as Slack messages carry) survives
  // signing in.
  var fragment = document.getElementById("fragment");
  if (fragment) fragment.value = window.location.hash;

  tick();
  setInterval(tick, 1000);
  setInterval(refresh, 15000);
})();
