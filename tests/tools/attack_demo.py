"""A bounded attack on a running demo (only ever 127.0.0.1), as docs/security.md reports it.

    # in another terminal; the throttle lifted so that requests reach the validation:
    DJANGO_DEBUG=0 ESP_FORMS_JSON='{"SUBMIT_THROTTLE": "100000/min"}' make run
    .venv/bin/python tests/tools/attack_demo.py http://127.0.0.1:8000 esputnik/2 unisender/3

The arguments after the URL are the webhook accounts (provider/id) to attack. About 850
requests: codec charsets with and without a query string against the API, the HTML form, the
admin login and the webhooks; surrogates, deep nesting, 100k unknown keys, invalid UTF-8, many
fields, unknown API paths, random Unicode. Prints the status counts, every 5xx and the largest
answer; exits 1 on any 5xx or a non-JSON answer under /api/esp-forms/.
"""
import base64
import bz2
import collections
import json
import random
import sys
import time
import zlib
from urllib.parse import urlsplit

import requests

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
CODECS = ["zlib", "bz2", "base64", "rot13", "hex", "uu", "quopri", "unicode_escape", "idna",
          "utf-7", "undefined", "utf-16", "cp1251", "nope"]
NASTY_JSON = [
    b'{"\\ud800": 1}', b'{"email": "\\ud800@example.com"}', b'{"email": "a\\u0000@b.c"}',
    b"[" * 100000, b'{"a":' * 20000, b"\xff\xfe", b"", b"null", b"1e99999",
    json.dumps({f"k{i}": 1 for i in range(100000)}).encode(),
    b'{"events_by_user": "x"}', b'{"events_by_user": [1, {"events": [{"event_data": [1]}]}]}',
    b'[{"email": {"a": 1}, "activity": "unsubscribed"}]', b'{"email": "a@b.c", "auth": "\\ud800"}',
]
NASTY_FORMS = [b"email=%ED%A0%80%40x.com", b"first_name=%FF&email=a%40example.com", b"\xff=\xfe",
               b"a=" + b"%" * 1000, b"&".join(b"k%d=1" % i for i in range(5000))]
PATHS = ["/api/esp-forms/submissions/not-a-uuid/", "/api/esp-forms/forms/newsletter.json/",
         "/api/esp-forms/x", "/api/esp-forms/%ED%A0%80/", "/api/esp-forms/schema/",
         "/api/esp-forms/forms/newsletter/submissions", "/confirm/garbage/",
         "/sandbox/confirm/garbage/", "/forms/%00/"]


def main() -> int:
    base = sys.argv[1].rstrip("/")
    if urlsplit(base).hostname not in ("127.0.0.1", "localhost"):
        sys.exit("attack only a local demo (127.0.0.1)")
    accounts = [tuple(a.split("/")) for a in sys.argv[2:]]
    session = requests.Session()
    stats: collections.Counter = collections.Counter()
    server_errors: list = []
    not_json: list = []
    largest = 0

    def go(method: str, path: str, data: bytes | None = None, content_type: str | None = None,
           **headers: str) -> requests.Response:
        nonlocal largest
        if content_type:
            headers["Content-Type"] = content_type
        response = session.request(method, base + path, data=data, headers=headers,
                                   allow_redirects=False)
        stats[response.status_code] += 1
        largest = max(largest, len(response.content))
        if response.status_code >= 500:
            server_errors.append((method, path, content_type, response.status_code))
        return response

    token = session.get(f"{base}/api/esp-forms/forms/newsletter/").json()["form_token"]
    time.sleep(2.2)
    body = json.dumps({"email": "a@example.com", "form_token": token}).encode()
    encoded = {"zlib": zlib.compress(body), "bz2": bz2.compress(body),
               "base64": base64.b64encode(body)}
    for charset in CODECS:
        raw = encoded.get(charset, body)
        for query in ("", "?a=1"):
            go("POST", f"/api/esp-forms/forms/newsletter/submissions/{query}", raw,
               f"{JSON}; charset={charset}")
            go("POST", f"/forms/newsletter/{query}", b"email=a%40example.com",
               f"{FORM}; charset={charset}")
            go("POST", f"/admin/login/{query}", b"username=a", f"{FORM}; charset={charset}")
            for provider, pk in accounts:
                go("POST", f"/webhooks/{provider}/{pk}/{query}", raw,
                   f"{JSON}; charset={charset}")
    for raw in NASTY_JSON:
        go("POST", "/api/esp-forms/forms/newsletter/submissions/", raw, JSON)
        for provider, pk in accounts:
            go("POST", f"/webhooks/{provider}/{pk}/", raw, JSON)
            go("POST", f"/webhooks/{provider}/{pk}/?secret=x", raw, FORM)
    for raw in NASTY_FORMS:
        go("POST", "/forms/newsletter/", raw, FORM, **{"X-Requested-With": "XMLHttpRequest"})
    for path in PATHS:
        for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS"):
            response = go(method, path)
            if (path.startswith("/api/") and method != "OPTIONS"
                    and response.status_code != 301
                    and "json" not in response.headers.get("content-type", "")):
                not_json.append((method, path, response.status_code))
    rnd = random.Random(7)
    for _ in range(600):
        key = "".join(chr(rnd.choice([rnd.randrange(32, 0x2fff), 0x202e, 0x200b, 0]))
                      for _ in range(rnd.randrange(1, 12)))
        value = "".join(chr(rnd.randrange(1, 0x10ffff)) for _ in range(rnd.randrange(0, 20)))
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        go("POST", "/api/esp-forms/forms/newsletter/submissions/", json.dumps(
            {"email": f"{value}@example.com", "first_name": value, key: value,
             "form_token": token}).encode(), JSON)
    print(f"requests: {sum(stats.values())}, statuses: {dict(sorted(stats.items()))}, "
          f"5xx: {len(server_errors)}, largest answer: {largest} bytes")
    for item in server_errors[:20]:
        print("5xx", item)
    for item in not_json:
        print("not JSON", item)
    return 1 if server_errors or not_json else 0


if __name__ == "__main__":
    sys.exit(main())
