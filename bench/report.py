"""``make bench``: run every benchmark and print one table of figures against their baselines.

Each script prints its own detail and a ``BENCH-RESULT`` line; this collects them. Every ratio
is the app's figure over a baseline measured in the same run (medians of several rounds), so
compare ratios: absolute figures move with the machine's load.

    .venv/bin/python bench/report.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPTS = [
    ("submit.py", ["--rounds", "3", "--seconds", "5"], ["--rounds", "2", "--seconds", "3"]),
    ("render.py", ["--rounds", "3", "--seconds", "4"], ["--rounds", "2", "--seconds", "3"]),
    ("latency.py", ["--rounds", "3", "--seconds", "4"], ["--rounds", "1", "--seconds", "4"]),
    ("delivery.py", ["--rounds", "3", "--count", "600"], ["--rounds", "1", "--count", "300"]),
    ("ratelimit_use.py", ["--rounds", "2"], ["--rounds", "1"]),
    ("polling.py", ["--sizes", "1000", "10000"], ["--sizes", "1000", "10000"]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    args = parser.parse_args()
    rows = []
    for script, full, quick in SCRIPTS:
        started = time.monotonic()
        print(f"== {script}", flush=True)
        proc = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick
                                                                     else full)],
                              capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH-RESULT "):
                rows += json.loads(line.removeprefix("BENCH-RESULT "))
            else:
                print(line)
        if proc.returncode:
            print(proc.stderr[-3000:])
            rows.append({"figure": script, "value": None, "unit": "FAILED", "baseline": "",
                         "baseline_value": None, "ratio": None, "note": "see above"})
        print(f"   ({time.monotonic() - started:.0f} s)\n", flush=True)
    print(f"{'figure':<32} {'value':>10} {'unit':<16} {'baseline':<28} {'value':>10} "
          f"{'ratio':>6}  note")
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.1f}"
        base = "" if r["baseline_value"] is None else f"{r['baseline_value']:.1f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['figure']:<32} {value:>10} {r['unit']:<16} {r['baseline']:<28} {base:>10} "
              f"{ratio:>6}  {r['note']}")


if __name__ == "__main__":
    main()
