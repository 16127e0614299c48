// fhirmwl desk: live updates (Server-Sent Events) and keyboard shortcuts. No framework.
"use strict";

(function () {
  const live = document.getElementById("live");
  const region = document.getElementById("worklist-region");

  function say(text) { if (live) live.textContent = text; }

  async function refreshWorklist() {
    const src = region.dataset.liveSrc;
    const before = new Set(Array.from(region.querySelectorAll("tr[data-task]"), (r) => r.dataset.task));
    const focused = document.activeElement && region.contains(document.activeElement)
      ? document.activeElement.closest("tr[data-task]") : null;
    const response = await fetch(src, { headers: { Accept: "text/html" }, cache: "no-store" });
    if (!response.ok) { say("Live update failed (" + response.status + ")"); return; }
    region.innerHTML = await response.text();
    let added = 0;
    region.querySelectorAll("tr[data-task]").forEach((row) => {
      if (!before.has(row.dataset.task)) { row.classList.add("fresh"); added += 1; }
    });
    if (focused) {
      const again = region.querySelector('tr[data-task="' + CSS.escape(focused.dataset.task) + '"] a');
      if (again) again.focus();
    }
    say("Updated " + new Date().toLocaleTimeString() + (added ? ", " + added + " new" : ""));
  }

  // The order page does not replace its forms under the user's hands: it shows a notice.
  const order = document.getElementById("order-live");

  async function checkOrder() {
    const response = await fetch(order.dataset.liveSrc, { cache: "no-store" });
    if (!response.ok) return;
    if ((await response.text()) !== order.dataset.fingerprint) {
      order.hidden = false;
      say("Order changed");
    }
  }

  function connect() {
    const target = region || order;
    if (!target || !window.EventSource) return;
    const refresh = region ? refreshWorklist : checkOrder;
    const events = new EventSource("/ui/events");
    let busy = false, again = false;
    async function update() {
      if (busy) { again = true; return; }
      busy = true;
      try { await refresh(); } catch (e) { say("Live update failed"); }
      busy = false;
      if (again) { again = false; update(); }
    }
    events.addEventListener("hello", (e) => {
      say("Live");
      if (region && e.data !== region.dataset.cursor) { region.dataset.cursor = e.data; update(); }
      if (order) update();
    });
    events.addEventListener("change", (e) => { target.dataset.cursor = e.data; update(); });
    events.onerror = () => say("Live: reconnecting…");
  }

  function rows() { return Array.from(document.querySelectorAll("table.worklist tbody tr[data-task] a.row-link")); }

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA");
    if (e.key === "/" && !typing) {
      const box = document.getElementById("patient-filter");
      if (box) { e.preventDefault(); box.focus(); box.select(); }
      return;
    }
    if ((e.key === "ArrowDown" || e.key === "ArrowUp") && !typing && region) {
      const links = rows();
      if (!links.length) return;
      const current = links.indexOf(document.activeElement);
      let next = e.key === "ArrowDown" ? current + 1 : current - 1;
      if (current < 0) next = 0;
      if (next >= 0 && next < links.length) { e.preventDefault(); links[next].focus(); }
    }
  });

  connect();
})();
