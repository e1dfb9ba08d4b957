/* ao dashboard: small glue around htmx and its websocket extension.
 *
 * The server pushes pre-rendered fragments (out-of-band swaps): cards, the session page's live
 * panels, the nav's Inbox badge. This file only keeps the
 * derived bits of the page right: filters, counts, the tab title, the live indicator, and a
 * resynchronisation of the board after a reconnect (changes missed while offline).
 */
(function () {
  "use strict";
  var ZONES = ["working", "pending", "review", "respond", "merge"];
  var ATTENTION = ["review", "respond", "merge"];
  var opened = false;

  function board() { return document.getElementById("board"); }

  function matches(card, root) {
    var p = root.dataset.fProject, a = root.dataset.fAgent, s = root.dataset.fStatus;
    if (p && card.dataset.project !== p) return false;
    if (a && card.dataset.agent !== a) return false;
    if (s && card.dataset.status !== s && card.dataset.zone !== s) return false;
    return true;
  }

  function refresh() {
    var root = board();
    if (!root) return;
    var body = document.getElementById("board-body");
    if (!body) return;
    var cards = body.querySelectorAll(".card");
    var counts = {};
    ZONES.forEach(function (z) { counts[z] = 0; });
    cards.forEach(function (card) {
      if (!matches(card, root)) { card.remove(); return; }
      if (card.dataset.zone in counts) counts[card.dataset.zone] += 1;
    });
    ZONES.forEach(function (z) {
      var el = document.getElementById("count-" + z);
      if (el) el.textContent = counts[z];
    });
    body.querySelectorAll(".column").forEach(function (col) {
      var n = col.querySelectorAll(".card").length;
      var el = col.querySelector(".col-count");
      if (el) el.textContent = n;
      col.classList.toggle("is-empty", n === 0);
    });
    var done = document.getElementById("col-done"), doneCount = document.getElementById("count-done");
    if (done && doneCount) {
      var shown = done.querySelectorAll(".card").length;
      if (done.dataset.initial === undefined) { done.dataset.initial = shown; done.dataset.total = doneCount.textContent; }
      doneCount.textContent = Math.max(shown, parseInt(done.dataset.total, 10) + shown - parseInt(done.dataset.initial, 10));
    }
    var attention = ATTENTION.reduce(function (sum, z) { return sum + counts[z]; }, 0);
    var att = document.getElementById("count-attention");
    if (att) att.textContent = attention;
    var base = root.dataset.baseTitle || "ao";
    document.title = (attention ? "(" + attention + ") " : "") + base;
  }

  function live(state) {
    var el = document.getElementById("live-indicator");
    if (!el) return;
    el.dataset.state = state;
    var text = el.querySelector(".live-text");
    if (text) text.textContent = state;
  }

  function pulse(message) {
    var ids = message.match(/id="card-[^"]+"/g) || [];
    ids.forEach(function (m) {
      var card = document.getElementById(m.slice(4, -1));
      if (!card) return;
      card.classList.remove("pulse");
      void card.offsetWidth;
      card.classList.add("pulse");
    });
  }

  // The nav's Inbox badge has its own socket (/ws/inbox/): its messages only swap the badge.
  function badgeSocket(e) { return !!(e.target && e.target.closest && e.target.closest("[data-ao-socket=inbox]")); }

  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:wsOpen", function (e) {
    if (badgeSocket(e)) return; // the server sends the current count on every connect
    live("live");
    if (opened) {
      // Back after a drop: fetch what changed while we were away.
      htmx.trigger(document.body, "ao:resync");
    }
    opened = true;
  });
  document.addEventListener("htmx:wsClose", function (e) { if (!badgeSocket(e)) live("reconnecting"); });
  document.addEventListener("htmx:wsAfterMessage", function (e) {
    if (badgeSocket(e)) return;
    refresh();
    pulse(e.detail.message || "");
    htmx.trigger(document.body, "ao:pushed");
  });
  document.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && (e.target.id === "board-body" || e.target.closest && e.target.closest("#board-body"))) refresh();
  });
  // A pushed card whose old copy is not on this page is normal (new session, other filter).
  document.addEventListener("htmx:oobErrorNoTarget", function (e) { e.preventDefault && e.preventDefault(); });
  // Buttons that ask first (data-confirm="question?"); no inline handlers: the CSP forbids them.
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-confirm]");
    if (btn && !window.confirm(btn.dataset.confirm)) { e.preventDefault(); e.stopPropagation(); }
  }, true);
  // Copy buttons (data-copy="<id of the field>"), e.g. a new API token.
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-copy]");
    var field = btn && document.getElementById(btn.dataset.copy);
    if (!field) return;
    field.select();
    if (navigator.clipboard) navigator.clipboard.writeText(field.value).then(function () { btn.textContent = "Copied"; });
  });
  // A page shown once (a new token) leaves a clean address: a reload must not post again.
  document.addEventListener("DOMContentLoaded", function () {
    var once = document.querySelector("[data-replace-url]");
    if (once && window.history.replaceState) window.history.replaceState(null, "", once.dataset.replaceUrl);
  });
  window.ao = { refresh: refresh };
})();
