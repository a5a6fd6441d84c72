"""The README's marked code blocks, as the executable-README test applies them.

A block the test runs is preceded by an HTML comment (invisible on GitHub and PyPI) that says
what to do with it::

    <!-- readme-test: install -->                   pip command(s) to run in the fresh venv
    <!-- readme-test: append mysite/settings.py -->  add to the end of that project file
    <!-- readme-test: create mysite/celery.py -->    write that project file
    <!-- readme-test: run -->                       shell commands run in the project
    <!-- readme-test: template -->                  Django template source to render
    <!-- readme-test: curl -->                      the JSON API example, run with bash
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
ACTIONS = {"install", "append", "create", "run", "template", "curl"}
_MARKED = re.compile(
    r"<!-- readme-test: (?P<action>[a-z]+)(?: (?P<path>\S+))? -->\n"
    r"```(?P<lang>[a-z]*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)


@dataclass(frozen=True)
class Block:
    action: str
    path: str | None
    lang: str
    body: str


def readme_blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    return [Block(m["action"], m["path"], m["lang"], m["body"]) for m in _MARKED.finditer(text)]


def one(blocks: list[Block], action: str, path: str | None = None) -> Block:
    found = [b for b in blocks if b.action == action and (path is None or b.path == path)]
    assert len(found) == 1, f"README needs exactly one '{action} {path or ''}' block: {found}"
    return found[0]


def commands(block: Block) -> list[str]:
    """The shell commands of a block, one per line, comments removed."""
    lines = []
    for line in block.body.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            lines.append(line)
    return lines


@dataclass(frozen=True)
class CurlSteps:
    """The curl example read as steps, for machines without curl."""

    get_url: str
    wait: float
    post_url: str
    body_template: str

    def body(self, token: str) -> str:
        return self.body_template.replace(TOKEN_SPLICE, token)


# How the example splices the shell variable into its single-quoted JSON body.
TOKEN_SPLICE = "'\"$TOKEN\"'"


def parse_curl_block(script: str) -> CurlSteps:
    wait = re.search(r"^sleep (\d+(?:\.\d+)?)", script, re.M)
    return CurlSteps(
        get_url=re.search(r"curl -s (http\S+)", script)[1],
        wait=float(wait[1]) if wait else 0.0,
        post_url=re.search(r"-X POST (http\S+)", script)[1],
        body_template=re.search(r"-d '(.*)'$", script, re.M)[1],
    )
