"""Reading the app's gettext catalogs without Django: what the i18n tests and ``make messages``
use to find entries that still need a translator.

``python -m tests.catalog uk ru`` prints, per language, the entries that are empty or marked
fuzzy (msgmerge's guesses for new or changed English strings), and exits 1 when there are any.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "esp_forms" / "locale"
LANGUAGES = ("uk", "ru")


def po_path(language: str, root: Path = LOCALE_DIR) -> Path:
    return root / language / "LC_MESSAGES" / "django.po"


def parse_po(text: str) -> list[dict]:
    """The entries of a .po file: msgid, msgid_plural, msgstr (list), refs, flags."""
    entries = []
    for block in text.split("\n\n"):
        entry: dict = {"refs": [], "flags": set(), "msgstr": [], "msgid_plural": None,
                       "msgctxt": None}
        key = None
        for line in block.splitlines():
            if line.startswith("#:"):
                entry["refs"] += [ref.rsplit(":", 1)[0] for ref in line[2:].split()]
            elif line.startswith("#,"):
                entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#"):
                continue
            else:
                match = re.match(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)?\s*"(.*)"$',
                                 line)
                assert match, line
                if match.group(1):
                    key = match.group(1)
                    if key.startswith("msgstr"):
                        entry["msgstr"].append("")
                    else:
                        entry[key] = ""
                value = match.group(2).encode().decode("unicode_escape").encode(
                    "latin-1").decode()
                if key.startswith("msgstr"):
                    entry["msgstr"][-1] += value
                else:
                    entry[key] += value
        if entry.get("msgid"):
            entries.append(entry)
    return entries


def read(language: str, root: Path = LOCALE_DIR) -> list[dict]:
    return parse_po(po_path(language, root).read_text(encoding="utf-8"))


def untranslated(entries: list[dict]) -> list[str]:
    """Entries a visitor or admin would see in English: empty, partly empty or fuzzy."""
    return [e["msgid"] for e in entries
            if "fuzzy" in e["flags"] or not e["msgstr"] or not all(e["msgstr"])]


def main(languages: list[str]) -> int:
    missing = 0
    for language in languages or LANGUAGES:
        entries = read(language)
        todo = untranslated(entries)
        missing += len(todo)
        print(f"{language}: {len(entries)} entries, {len(todo)} to translate")
        for msgid in todo:
            print(f"  {msgid!r}")
    if missing:
        print(f"Translate the entries above in {po_path('<lang>')} (remove the 'fuzzy' flag once "
              "checked), then run `make messages` again.")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
