"""A local stand-in for the CAPTCHA providers: a real HTTP server on 127.0.0.1.

It answers the siteverify POST the way Cloudflare Turnstile and hCaptcha document it
(form-encoded ``secret``, ``response``, ``remoteip``; JSON ``{"success", "error-codes"}``, see
esp_forms/captcha.py for the sources), and serves a tiny widget script that does what the real
widgets do for a form: add the hidden answer input (``cf-turnstile-response`` or
``h-captcha-response``) holding a token. Tokens starting with ``pass`` verify; every token
verifies once (the real ones are single-use).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

SECRET = "stand-in-secret"

WIDGET_JS = """
(function () {
  var kinds = {"cf-turnstile": "cf-turnstile-response", "h-captcha": "h-captcha-response"};
  var n = 0;
  // Loaded with ?render=explicit the real scripts render only what render() is given.
  var explicit = /[?&]render=explicit/.test((document.currentScript || {}).src || "");
  function widget(el, cls) {
    if (el.querySelector("input")) { return; }
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = kinds[cls];
    input.value = "pass-" + Date.now() + "-" + (++n);
    el.textContent = "";
    el.appendChild(input);
    var label = document.createElement("span");
    label.textContent = "Verified (stand-in)";
    el.appendChild(label);
  }
  function render() {
    Object.keys(kinds).forEach(function (cls) {
      document.querySelectorAll("." + cls).forEach(function (el) { widget(el, cls); });
    });
  }
  function api(cls) {
    return {
      render: function (el) { widget(el, cls); return "stand-in-" + (++n); },
      reset: function (el) {
        var scope = el && el.querySelectorAll ? el : document;
        scope.querySelectorAll((scope === document ? "." + cls + " " : "") + "input").forEach(
          function (i) { i.value = "pass-" + Date.now() + "-" + (++n); });
      }
    };
  }
  window.turnstile = api("cf-turnstile");
  window.hcaptcha = api("h-captcha");
  if (explicit) { return; }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", render); }
  else { render(); }
}());
"""


@dataclass
class Verification:
    path: str
    fields: dict[str, str]
    content_type: str


@dataclass
class StandIn:
    url: str = ""
    requests: list[Verification] = field(default_factory=list)
    # "ok" answers; "down" answers 503; "garbage" answers non-JSON; "slow" sleeps past timeouts.
    mode: str = "ok"
    delay: float = 0.0
    spent: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify_url(self, provider: str) -> str:
        return f"{self.url}/{provider}/siteverify"

    def script_url(self, provider: str) -> str:
        return f"{self.url}/{provider}/api.js"

    def settings(self, **extra) -> dict:
        return {"TURNSTILE_SITE_KEY": "ts-site", "TURNSTILE_SECRET_KEY": SECRET,
                "TURNSTILE_VERIFY_URL": self.verify_url("turnstile"),
                "TURNSTILE_SCRIPT_URL": self.script_url("turnstile"),
                "HCAPTCHA_SITE_KEY": "hc-site", "HCAPTCHA_SECRET_KEY": SECRET,
                "HCAPTCHA_VERIFY_URL": self.verify_url("hcaptcha"),
                "HCAPTCHA_SCRIPT_URL": self.script_url("hcaptcha"),
                "CAPTCHA_TIMEOUT": 1.0, **extra}

    def answer(self, fields: dict[str, str]) -> tuple[int, dict]:
        if fields.get("secret") != SECRET:
            return 200, {"success": False, "error-codes": ["invalid-input-secret"]}
        token = fields.get("response", "")
        if not token:
            return 200, {"success": False, "error-codes": ["missing-input-response"]}
        with self.lock:
            if token in self.spent:
                return 200, {"success": False, "error-codes": ["timeout-or-duplicate"]}
            self.spent.add(token)
        if not token.startswith("pass"):
            return 200, {"success": False, "error-codes": ["invalid-input-response"]}
        return 200, {"success": True, "error-codes": [], "hostname": "localhost",
                     "challenge_ts": "2026-01-01T00:00:00Z"}


def start() -> tuple[StandIn, ThreadingHTTPServer]:
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.split("?", 1)[0].endswith("/api.js"):
                self._send(200, WIDGET_JS.encode(), "text/javascript")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            fields = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            with state.lock:
                state.requests.append(Verification(self.path, fields,
                                                   self.headers.get("Content-Type", "")))
            if state.mode == "slow":
                time.sleep(state.delay or 3)
            if state.mode == "down":
                self._send(503, b"<html>Service Unavailable</html>", "text/html")
                return
            if state.mode == "garbage":
                self._send(200, b"<html>maintenance</html>", "text/html")
                return
            status, body = state.answer(fields)
            self._send(status, json.dumps(body).encode(), "application/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server
