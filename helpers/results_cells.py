"""Reading results files and writing their numbers as table cells, for :mod:`helpers.readme_tables`.

:class:`Results` loads ``results/<name>.json`` (the paper's numbers: ``results/paper.yaml``) once, follows
keys into it with one-line errors naming the file and the dotted field, and remembers what was read (the
source line under each README table); :func:`cells` writes ``{row: {column: value}}`` as markdown cells
with the best value of a column in bold; :func:`merge` and :func:`transpose` combine them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from helpers.findings import best, fmt_num
from helpers.io import DataError
from helpers.tasks import TRAIN_TASKS, get_task

PAPER = "paper"   # results/paper.yaml: the paper's tables
TASKS = list(TRAIN_TASKS)


class Results:
    """The results files a table reads, loaded once; every file read is remembered for the source line."""

    def __init__(self, folder: str | Path):
        self.folder, self.cache, self.read = Path(folder), {}, []

    def path(self, name: str) -> Path:
        return self.folder / (f"{name}.yaml" if name == PAPER else f"{name}.json")

    def at(self, name: str, *keys: str):
        """``results/<name>.json`` (or ``paper.yaml``) followed through ``keys``; a missing file or key is
        a :class:`DataError` naming the file and the dotted field."""
        path = self.path(name)
        if name not in self.cache:
            if not path.is_file():
                raise DataError("results file not found (--results): run the notebook or command that writes it",
                                file=path)
            try:
                text = path.read_text(encoding="utf-8")
                self.cache[name] = yaml.safe_load(text) if name == PAPER else json.loads(text)
            except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
                raise DataError(f"not a readable results file ({e})", file=path) from None
        if name not in self.read:
            self.read.append(name)
        node = self.cache[name]
        for i, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                raise DataError("not in this results file", file=path, field=".".join(keys[:i + 1]))
            node = node[key]
        return node


def by_task(values: Mapping[str, float]) -> dict[str, float]:
    """``{task: value}`` keyed by the paper's column names (``Step@15``, ...)."""
    return {get_task(t).label: values.get(t) for t in TASKS}


def cells(values: Mapping[str, Mapping[str, float | None]], digits: int = 2, bold: Iterable[str] = (),
          lowest: Iterable[str] = (), notes: Mapping[str, Mapping[str, str]] | None = None) -> dict:
    """``{row: {column: value}}`` written as cells: ``digits`` decimals, the best value of each column in
    ``bold`` (highest; in ``lowest``, lowest) in bold, every row that reaches it on a tie, then
    `` (note)`` where ``notes`` has one. A missing value is an empty cell."""
    marked = {(r, c) for c in bold for r in best({r: v.get(c) for r, v in values.items()})}
    marked |= {(r, c) for c in lowest for r in best({r: v.get(c) for r, v in values.items()}, highest=False)}
    out: dict = {}
    for r, row in values.items():
        for c, v in row.items():
            text = "" if v is None else fmt_num(v, digits)
            text = f"**{text}**" if (r, c) in marked else text
            note = (notes or {}).get(r, {}).get(c)
            out.setdefault(r, {})[c] = f"{text} ({note})" if note else text
    return out


def merge(*tables: Mapping[str, Mapping[str, str]]) -> dict:
    """Cells of the same rows from several :func:`cells` calls (columns written with different digits)."""
    out: dict = {}
    for t in tables:
        for r, row in t.items():
            out.setdefault(r, {}).update(row)
    return out


def transpose(table: Mapping[str, Mapping[str, str]]) -> dict:
    out: dict = {}
    for r, row in table.items():
        for c, v in row.items():
            out.setdefault(c, {})[r] = v
    return out
