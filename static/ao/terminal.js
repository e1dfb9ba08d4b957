/* The browser terminal: xterm.js on /ws/terminal/<session>/ (server: sessions/dashboard/consumers_terminal.py).
 *
 * Binary frames are terminal output, decoded with one streaming TextDecoder per connection (a
 * UTF-8 character split across frames is completed by the next frame). Text frames are JSON
 * control messages. The browser acknowledges what it has drawn ({type: "ack"}), which is how the
 * server bounds what is in flight. Keystrokes are sent only when the server's "hello" says this
 * user may type (the server drops them otherwise anyway). The terminal takes the size the server
 * announces; an operator's fitted size is proposed on connect and on window resize.
 * Output is handed to xterm.js as text to draw, never to the DOM as HTML.
 * Only what the person types or pastes is sent: the emulator's own answers to queries and its
 * focus events are not (see answerNoQueries; sessions/dashboard/terminal_filters.py input_keys drops them too).
 */
(function () {
  "use strict";
  if (window.aoTerminal) { window.aoTerminal.scan(document); return; }

  var ACK_EVERY = 32 * 1024;
  var NO_RECONNECT = { 4403: "not allowed", 4404: "not attachable", 4410: "ended" };
  var NOT_YET = 4425; // the session has no terminal yet: try again, as after a dropped connection

  var FOCUS_IN = "\x1b[I", FOCUS_OUT = "\x1b[O";
  var swallow = function () { return true; };

  // xterm.js's onData carries both what the person types and what the emulator answers on its
  // own: device attributes, cursor/status/mode reports, colour and version replies. tmux asks
  // every client on attach, and each viewer's terminal would answer the copy in the replay: the
  // answers would land on the agent's input line. So the queries are consumed here and never
  // answered; focus reporting is never switched on. (The server drops such answers too.)
  function answerNoQueries(term) {
    var p = term.parser;
    [
      { final: "c" }, { prefix: ">", final: "c" }, { prefix: "=", final: "c" }, // DA1, DA2, DA3
      { final: "n" }, { prefix: "?", final: "n" }, // DSR: status, cursor position
      { intermediates: "$", final: "p" }, { prefix: "?", intermediates: "$", final: "p" }, // DECRQM
      { prefix: ">", final: "q" }, // XTVERSION
      { final: "t" }, // window reports
      { prefix: "?", final: "u" }, // kitty keyboard flags
    ].forEach(function (id) { p.registerCsiHandler(id, swallow); });
    p.registerDcsHandler({ intermediates: "$", final: "q" }, swallow); // DECRQSS
    [4, 10, 11, 12, 17, 19].forEach(function (osc) { // colour queries ("?")
      p.registerOscHandler(osc, function (data) { return data.split(";").indexOf("?") >= 0; });
    });
    p.registerCsiHandler({ prefix: "?", final: "h" }, function (params) { // focus reporting on
      return params.length === 1 && params[0] === 1004;
    });
  }

  function AoTerminal(root) {
    this.root = root;
    this.statusEl = root.querySelector("[data-role=status]");
    this.screen = root.querySelector("[data-role=screen]");
    this.mayType = root.dataset.canType === "true";
    this.attempt = 0;
    this.stopped = false;
    this.term = new window.Terminal({
      cursorBlink: true,
      scrollback: 5000,
      fontSize: 13,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      theme: { background: "#07090d" },
      disableStdin: !this.mayType,
    });
    this.fit = new window.FitAddon.FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(this.screen);
    try { this.fit.fit(); } catch (e) { /* not visible yet */ }
    var self = this;
    answerNoQueries(this.term);
    this.term.onData(function (data) {
      if (data === FOCUS_IN || data === FOCUS_OUT) { return; }
      self.sendInput(data);
    });
    this.term.onBinary(function (data) { self.sendInput(data); });
    this.resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(self.resizeTimer);
      self.resizeTimer = setTimeout(function () { self.proposeSize(); }, 150);
    });
    this.connect();
  }

  AoTerminal.prototype.setStatus = function (state, text) {
    this.statusEl.dataset.state = state;
    this.statusEl.textContent = text || state;
    this.root.dataset.state = state;
  };

  AoTerminal.prototype.url = function () {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + this.root.dataset.wsPath;
  };

  AoTerminal.prototype.connect = function () {
    if (this.stopped) { return; }
    var self = this;
    var ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.decoder = new TextDecoder("utf-8");
    this.drawn = 0;
    this.acked = 0;
    ws.onmessage = function (event) {
      if (ws !== self.ws) { return; }
      if (typeof event.data === "string") { self.control(JSON.parse(event.data)); return; }
      var bytes = new Uint8Array(event.data);
      self.term.write(self.decoder.decode(bytes, { stream: true }), function () {
        if (ws !== self.ws) { return; }
        self.drawn += bytes.length;
        if (self.drawn - self.acked >= ACK_EVERY) {
          self.acked = self.drawn;
          self.send({ type: "ack", bytes: self.drawn });
        }
      });
    };
    ws.onclose = function (event) {
      if (ws !== self.ws) { return; }
      self.ws = null;
      if (!document.body.contains(self.root)) { self.stopped = true; return; }
      if (NO_RECONNECT[event.code]) {
        // an error, or the server's own words for why it ended ("closed"), stay as they were said
        var said = self.root.dataset.state;
        if (said !== "error" && said !== "ended") { self.setStatus("ended", NO_RECONNECT[event.code]); }
        return;
      }
      var delay = Math.min(15000, 500 * Math.pow(2, self.attempt++)) * (0.75 + Math.random() / 2);
      // no terminal yet (its agent is starting): the server's words stay while it tries again
      if (event.code !== NOT_YET) { self.setStatus("reconnecting", "reconnecting…"); }
      setTimeout(function () { self.connect(); }, delay);
    };
  };

  AoTerminal.prototype.control = function (msg) {
    if (msg.type === "hello") {
      this.attempt = 0;
      this.term.reset(); // the server replays recent output to every new connection
      this.mayType = !!msg.may_type;
      this.term.options.disableStdin = !this.mayType;
      this.setStatus(this.mayType ? "live" : "read-only", this.mayType ? "live" : "read-only");
      this.proposeSize();
    } else if (msg.type === "size") {
      if (msg.cols !== this.term.cols || msg.rows !== this.term.rows) { this.term.resize(msg.cols, msg.rows); }
    } else if (msg.type === "resync") {
      this.decoder = new TextDecoder("utf-8"); // bytes were skipped: start decoding afresh
    } else if (msg.type === "readonly") {
      this.mayType = false;
      this.term.options.disableStdin = true;
      this.setStatus("read-only", "read-only (input not sent)");
    } else if (msg.type === "error") {
      this.setStatus("error", msg.message);
    } else if (msg.type === "closed") {
      this.setStatus("ended", msg.message || "ended");
    } else if (msg.type === "waiting") {
      this.setStatus("waiting", msg.message || "waiting for its terminal");
    }
  };

  AoTerminal.prototype.send = function (msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(msg)); }
  };

  AoTerminal.prototype.sendInput = function (data) {
    if (this.mayType) { this.send({ type: "input", data: data }); }
  };

  AoTerminal.prototype.proposeSize = function () {
    if (!this.mayType) { return; } // viewers take the operator's size
    var dims = null;
    try { dims = this.fit.proposeDimensions(); } catch (e) { dims = null; }
    if (dims && dims.cols > 0 && dims.rows > 0) {
      this.send({ type: "resize", cols: dims.cols, rows: dims.rows });
    }
  };

  function scan(scope) {
    (scope || document).querySelectorAll("[data-ao-terminal]").forEach(function (el) {
      if (!el.aoTerminal) { el.aoTerminal = new AoTerminal(el); }
    });
  }

  window.aoTerminal = { scan: scan, AoTerminal: AoTerminal };
  scan(document);
  document.addEventListener("htmx:load", function (event) { scan(event.target); });
})();
