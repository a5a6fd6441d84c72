"""How many calls per second a plain ``requests.Session`` loop gets from the provider emulator.

The emulator runs in its own process (``python -m esp_forms.emulator``, as a user runs it), so
client and server do not share one GIL. The loop calls eSputnik *Subscribe contact* (the app's
hot path: Basic auth, a JSON body, a unique email per call so no 409) over one keep-alive
connection, in four server configurations:

- ``shipped``: TCP_NODELAY on accepted sockets and each answer written in one ``send``;
- ``one write, Nagle on``: no TCP_NODELAY, answers still in one ``send``;
- ``split writes, TCP_NODELAY``: headers and body sent apart, Nagle off;
- ``stdlib pattern``: no TCP_NODELAY and headers and body written apart, which is what a plain
  ``BaseHTTPRequestHandler`` does (``end_headers()`` then ``wfile.write(body)``).

The last one is the baseline: the second small write waits for the ACK of the first, and the
client delays that ACK by up to 40 ms, so each keep-alive call stalls (DESIGN.md section 5).
Either remedy alone removes the stall; the emulator ships both. The printed ratio is shipped
over baseline, measured in this same run. Runtime stays well under 30 s (``--seconds`` per
configuration, default 2).

    .venv/bin/python bench/emulator_throughput.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esp_forms.emulator.demo import DEMO_ESPUTNIK_KEY  # noqa: E402 - needs the path above

CONFIGS: list[tuple[str, list[str]]] = [
    ("shipped (TCP_NODELAY, one write)", []),
    ("one write, Nagle on", ["--no-tcp-nodelay"]),
    ("split writes, TCP_NODELAY", ["--split-writes"]),
    ("stdlib pattern (baseline)", ["--no-tcp-nodelay", "--split-writes"]),
]


def start_emulator(flags: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "esp_forms.emulator", "--port", "0", "--demo", "--quiet", *flags],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    url = None
    for line in proc.stdout:
        found = re.search(r"http://\S+", line)
        url = url or (found.group(0) if found else None)
        if "Ctrl-C" in line:
            break
    if not url:
        proc.kill()
        raise SystemExit("the emulator did not start")
    # The documented 200 calls/s limit of eSputnik would cap the loop: switch it off.
    requests.post(url + "/_emulator/rate-limits", timeout=5, json={
        "provider": "esputnik", "api_key": DEMO_ESPUTNIK_KEY, "limit": 0, "window": 1})
    return proc, url


def measure(url: str, seconds: float) -> tuple[int, float, list[float]]:
    """Calls made in ``seconds`` of a single-connection loop, the time taken, per-call times."""
    endpoint = url + "/api/v1/contact/subscribe"
    auth = ("", DEMO_ESPUTNIK_KEY)
    with requests.Session() as session:
        def call(n: int) -> None:
            body = {"contact": {"channels": [{"type": "email", "value": f"b{n}@example.com"}]},
                    "groups": ["Newsletter"], "formType": "bench"}
            response = session.post(endpoint, json=body, auth=auth, timeout=5)
            if response.status_code != 200:
                raise SystemExit(f"unexpected answer {response.status_code}: {response.text}")

        for n in range(20):  # warm up: connection, code paths
            call(-n - 1)
        samples: list[float] = []
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while (now := time.perf_counter()) < deadline:
            call(count)
            samples.append(time.perf_counter() - now)
            count += 1
        return count, time.perf_counter() - started, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="measuring time per configuration (default 2; 4 configurations)")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 0.5), 6.0)  # keeps the whole run under 30 s

    print(f"requests.Session loop, POST /api/v1/contact/subscribe, {seconds:g} s each, "
          f"emulator in its own process")
    rates: dict[str, float] = {}
    for name, flags in CONFIGS:
        proc, url = start_emulator(flags)
        try:
            count, elapsed, samples = measure(url, seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=5)
        rates[name] = count / elapsed
        p50 = statistics.median(samples) * 1000
        p99 = statistics.quantiles(samples, n=100)[98] * 1000 if len(samples) >= 100 else max(
            samples) * 1000
        print(f"  {name:<34} {rates[name]:8.0f} calls/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms"
              f"   ({count} calls)")
    shipped, baseline = rates[CONFIGS[0][0]], rates[CONFIGS[-1][0]]
    print(f"ratio shipped / stdlib pattern: {shipped / baseline:.1f}x")


if __name__ == "__main__":
    main()
