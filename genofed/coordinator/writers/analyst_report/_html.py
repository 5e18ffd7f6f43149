"""HTML building blocks of the analyst's report: escaping, numbers, tables, embedded PNGs.

Every function returns escaped HTML, so that a value from a results file
(a site name, a variant ID) is always text in the page, never markup.
"""

from __future__ import annotations

import base64
import html
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

#: Rows shown of a table file; the rest are in the file the section lists.
MAX_ROWS = 200


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: object) -> str:
    """A summary value as text: numbers to 6 significant digits, null as NA."""
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else "NA"
    if isinstance(value, Mapping):
        return "; ".join(f"{k} = {fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value) if value else "none"
    return str(value)


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    table_id: str = "",
    cls: str = "",
    empty: str = "nothing to show",
) -> str:
    """An HTML table of already-escaped cells; a note instead when there is no row."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{e(table_id)}"' if table_id else ""
    if not body:
        return f'<p{ident} class="empty">{e(empty)}</p>'
    attrs = ident + (f' class="{e(cls)}"' if cls else "")
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def key_values(values: Mapping[str, object], *, table_id: str = "", cls: str = "kv") -> str:
    """One row per key; each row carries its key in ``data-key``."""
    rows = "".join(
        f'<tr data-key="{e(k)}"><th>{e(k)}</th><td>{e(fmt(v))}</td></tr>' for k, v in values.items()
    )
    if not rows:
        return '<p class="empty">no summary statistics</p>'
    attrs = (f' id="{e(table_id)}"' if table_id else "") + f' class="{e(cls)}"'
    return f"<table{attrs}><tbody>{rows}</tbody></table>"


def read_tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    """A (small) tab-separated file's header and rows."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return [], []
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:] if line]


def iter_tsv(path: Path) -> Iterator[list[str]]:
    """A tab-separated file's rows, header first, one at a time (tables of any size)."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip("\n").split("\t")


def tsv_table(path: Path, *, table_id: str = "", max_rows: int = MAX_ROWS) -> str:
    """A table file as an HTML table (the first ``max_rows`` rows, saying so when cut)."""
    rows = iter_tsv(path)
    header = next(rows, [])
    shown = list(itertools.islice(rows, max_rows))
    more = sum(1 for _ in rows)
    out = table(header, ([e(c) for c in r] for r in shown), table_id=table_id)
    if more:
        total = len(shown) + more
        out += f'<p class="meta">first {max_rows} of {total} rows; all in {e(path.name)}</p>'
    return out


def png(path: Path, *, alt: str, img_id: str = "") -> str:
    """The PNG file embedded as a data URI, captioned with its file name."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    ident = f' id="{e(img_id)}"' if img_id else ""
    return (
        f'<figure><img{ident} class="plot" alt="{e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption><code>{e(path.name)}</code></figcaption></figure>"
    )


def file_list(names: Iterable[str], *, list_id: str = "") -> str:
    """The file names as a list (no sizes: the page must not depend on when it is rendered)."""
    items = "".join(f"<li><code>{e(name)}</code></li>" for name in names)
    ident = f' id="{e(list_id)}"' if list_id else ""
    return f'<ul class="files"{ident}>{items}</ul>' if items else ""


__all__ = [
    "MAX_ROWS",
    "e",
    "file_list",
    "fmt",
    "iter_tsv",
    "key_values",
    "png",
    "read_tsv",
    "table",
    "tsv_table",
]
