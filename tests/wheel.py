"""Build the wheel the way a fresh checkout would.

setuptools copies sources into ``build/lib`` and never removes what it copied before, so a
wheel built in a working tree can carry files that no longer exist (a renamed migration then
makes a second leaf and breaks ``migrate``). The wheel is built from a copy of the files git
would ship: tracked ones plus new, not ignored ones.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(dest: Path) -> Path:
    source = dest / "source"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        path = ROOT / name
        if path.is_file():  # a tracked file deleted in the working tree is not shipped
            target = source / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    out = dest / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True,
                   timeout=300)
    return next(out.glob("esp_forms-*.whl"))
