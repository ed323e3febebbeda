"""Write the measured numbers of ``docs/reproductions/*.json`` into ``docs/REPRODUCTIONS.md``.

The document holds no measured number of its own: every one sits between two markers and is rewritten from the
JSON files the scripts wrote,

- ``<!-- table NAME/TABLE -->`` ... ``<!-- /table -->``: the table ``tables[TABLE]`` of ``NAME.json``;
- ``<!-- quote NAME/KEY -->`` ... ``<!-- /quote -->``: the sentence or number ``quote[KEY]`` of ``NAME.json``.

    python examples/reproduce/render.py            # rewrite the document in place
    python examples/reproduce/render.py --check    # exit 1 when the document does not quote the JSON files
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "REPRODUCTIONS.md"
RESULTS = ROOT / "docs" / "reproductions"

TABLE = re.compile(r"(<!-- table (?P<name>[\w-]+)/(?P<key>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
QUOTE = re.compile(r"(<!-- quote (?P<name>[\w-]+)/(?P<key>[\w-]+) -->)(?P<body>.*?)(<!-- /quote -->)", re.DOTALL)


def markdown_table(table: dict[str, Any]) -> str:
    """A GitHub-flavoured markdown table (``|`` in cells escaped)."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [row(table["columns"]), row(["---"] * len(table["columns"]))]
    lines += [row(r) for r in table["rows"]]
    return "\n".join(lines) + "\n"


def render(text: str, load: Callable[[str], dict[str, Any]]) -> str:
    """``text`` with every marked table and quote rewritten from ``load(NAME)`` (the parsed ``NAME.json``).

    Raises:
        KeyError: naming the marker whose table or quote the JSON file does not hold.
    """

    def table(match: re.Match[str]) -> str:
        name, key = match["name"], match["key"]
        tables = load(name).get("tables", {})
        if key not in tables:
            raise KeyError(f"{name}.json has no table {key!r} (tables: {sorted(tables)})")
        return match.group(1) + markdown_table(tables[key]) + match.group(5)

    def quote(match: re.Match[str]) -> str:
        name, key = match["name"], match["key"]
        quotes = load(name).get("quote", {})
        if key not in quotes:
            raise KeyError(f"{name}.json has no quote {key!r} (quotes: {sorted(quotes)})")
        return match.group(1) + str(quotes[key]) + match.group(5)

    return QUOTE.sub(quote, TABLE.sub(table, text))


def loader(folder: Path = RESULTS) -> Callable[[str], dict[str, Any]]:
    """Read ``folder/NAME.json`` once per name."""
    cache: dict[str, dict[str, Any]] = {}

    def load(name: str) -> dict[str, Any]:
        if name not in cache:
            cache[name] = json.loads((folder / f"{name}.json").read_text())
        return cache[name]

    return load


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the document is stale")
    args = parser.parse_args(argv)
    text = DOCUMENT.read_text()
    rendered = render(text, loader())
    if args.check:
        if rendered != text:
            print(f"{DOCUMENT} does not quote {RESULTS}/*.json: run python examples/reproduce/render.py")
            return 1
        return 0
    DOCUMENT.write_text(rendered)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
