// swarmboot's dashboard: keeps the page live without a reload. Every 2 s it asks the server
// for this page's live part (the same URL with fragment=1: HTML the server rendered and
// escaped) and swaps it in when it changed, keeping keyboard focus where it was. No other
// script, no framework; the page works without it.
"use strict";
(function () {
  const live = document.getElementById("live");
  const status = document.getElementById("status");
  if (!live) return;
  const every = 2000;
  // A form's answer (at the form's address) names the page it shows in data-src.
  function url() {
    const u = new URL(live.dataset.src || window.location.href, window.location.href);
    u.searchParams.set("fragment", "1");
    return u.toString();
  }
  function stamp(text, offline) {
    status.textContent = text;
    status.classList.toggle("offline", offline);
  }
  async function refresh() {
    if (document.hidden) return;
    try {
      const r = await fetch(url(), { cache: "no-store", credentials: "same-origin" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const html = await r.text();
      if (html !== live.dataset.last) {
        const focused = document.activeElement && document.activeElement.id;
        live.innerHTML = html;
        live.dataset.last = html;
        if (focused) {
          const again = document.getElementById(focused);
          if (again) again.focus();
        }
      }
      stamp("live · " + new Date().toLocaleTimeString(), false);
    } catch (e) {
      stamp("server not answering (" + e.message + "): showing the last figures", true);
    }
  }
  // The filter form updates the address and the table at once as it changes.
  const form = document.getElementById("filter");
  if (form) {
    form.addEventListener("input", function () {
      const u = new URL(window.location.href);
      for (const [k, v] of new FormData(form)) {
        if (v === "") u.searchParams.delete(k); else u.searchParams.set(k, v);
      }
      if (!form.querySelector("input[name=stuck]").checked) u.searchParams.delete("stuck");
      history.replaceState(null, "", u);
      refresh();
    });
  }
  refresh();
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
