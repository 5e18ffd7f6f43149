"""plink-style phenotype and covariate tables, and matching them to genotyped samples.

The format is the one plink 1.9 and plink2 read with ``--pheno`` / ``--covar``,
so a hospital can point the site agent at the files it already uses:

* whitespace- or tab-separated, one header line first; leading blank lines
  and ``##`` comment lines are skipped;
* the header starts with ``FID IID`` or plink2's ``#FID IID``, or with
  ``IID`` / ``#IID`` when there is no family ID (then ``fid`` repeats the IID
  and the table is matched to the ``.fam`` on IID alone, which works whatever
  the ``.fam`` holds as FID, e.g. ``0`` or a copy of the IID);
* values are numbers; ``-9``, ``NA``, ``nan`` and ``.`` mean missing (NaN).
  GenoFed treats ``-9`` as missing in covariates too, so a covariate that can
  truly be -9 must be shifted.

Every problem is an :class:`InputError` naming the file, the line and the
column, because the person reading it is editing the file in a text editor.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genofed.common.errors import InputError
from genofed.site_agent.io.plink import Samples

MISSING_TOKENS = frozenset({"NA", "NAN", "."})
MISSING_VALUE = -9.0
_MISSING_HINT = "write missing values as -9, NA, nan or ."
_HEADER_HINT = "the first line must be a header: '#FID IID <columns...>' or '#IID <columns...>'"


@dataclass(frozen=True)
class PhenoTable:
    """A parsed table: one row per sample, float64 columns with NaN for missing."""

    path: Path
    fid: np.ndarray
    iid: np.ndarray
    columns: dict[str, np.ndarray]
    has_fid: bool = field(default=True)

    def __len__(self) -> int:
        return len(self.iid)

    def column(self, name: str) -> np.ndarray:
        """The named column; an InputError listing the columns if absent."""
        if name not in self.columns:
            available = ", ".join(self.columns) or "(none)"
            raise InputError(
                f"no column {name!r}; the columns are: {available}",
                path=self.path,
                hint="check the spelling and the case of the column name in the header",
            )
        return self.columns[name]

    def is_binary(self, name: str) -> bool:
        """True when the non-missing values are all in {1, 2} (plink case/control) or {0, 1}."""
        values = self.column(name)
        present = set(np.unique(values[~np.isnan(values)]).tolist())
        return bool(present) and (present <= {1.0, 2.0} or present <= {0.0, 1.0})


def _parse_value(token: str, *, path: Path, line: int, name: str, col_no: int) -> float:
    try:
        value = float(token)
    except ValueError:
        if token.upper() in MISSING_TOKENS:
            return math.nan
        hint = _MISSING_HINT
        if name.upper() == "SEX" and token.upper() in {"M", "F", "MALE", "FEMALE"}:
            hint = "code sex as numbers: 1 = male, 2 = female (letters are not read); " + hint
        raise InputError(
            f"column {name!r} (column {col_no}) has {token!r}, which is not a number",
            path=path,
            line=line,
            hint=hint,
        ) from None
    if math.isnan(value) or value == MISSING_VALUE:
        return math.nan
    if math.isinf(value):
        raise InputError(
            f"column {name!r} (column {col_no}) has {token!r}, which is not finite",
            path=path,
            line=line,
            hint=_MISSING_HINT,
        )
    return value


#: Missing-value tokens that ``float`` does not read (``nan`` it reads), in every case.
_MISSING_SPELLINGS = {"NA": "nan", "Na": "nan", "nA": "nan", "na": "nan", ".": "nan"}


def _values_fast(data: list[tuple[int, list[str]]], n_fields: int, n_id: int) -> np.ndarray | None:
    """The value columns of a well-formed table, or None if any row needs a closer look.

    The same values as :func:`_parse_value` row by row (``float``, then NaN
    for ``-9`` and the missing tokens), 10-20x faster; the caller parses a
    table that this declines line by line, to report its first problem.
    """
    if any(len(fields) != n_fields for _, fields in data):
        return None
    spell = _MISSING_SPELLINGS.get
    try:
        values = np.array(
            [[float(spell(t, t)) for t in fields[n_id:]] for _, fields in data],
            dtype=np.float64,
        ).reshape(len(data), n_fields - n_id)
    except ValueError:
        return None
    if np.isinf(values).any():
        return None
    values[values == MISSING_VALUE] = math.nan
    return values


def _read_lines(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(
            "file not found",
            path=path,
            hint="check the path; site.toml's paths are relative to the site directory",
        ) from exc
    except IsADirectoryError as exc:
        raise InputError(
            "is a directory, not a table", path=path, hint="give the path of the table's file"
        ) from exc
    except OSError as exc:
        raise InputError(
            f"cannot read the table ({exc.strerror or exc})",
            path=path,
            hint="check that the file is readable by this user",
        ) from exc
    except UnicodeDecodeError as exc:
        raise InputError("not a UTF-8 text file", path=path, hint=_HEADER_HINT) from exc
    # spreadsheet exports often start with a UTF-8 byte-order mark; it is not data
    text = text.removeprefix("\ufeff")
    rows: list[tuple[int, list[str]]] = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        blank = not fields
        comment_before_header = not rows and not blank and fields[0].startswith("##")
        if not (blank or comment_before_header):
            rows.append((n, fields))
    return rows


def read_pheno_table(path: Path) -> PhenoTable:
    """Read a plink-style phenotype or covariate table (see the module docstring)."""
    path = Path(path)
    rows = _read_lines(path)
    if not rows:
        raise InputError("empty file: no header and no samples", path=path, hint=_HEADER_HINT)
    header_line, header = rows[0]
    first = header[0].lstrip("#").upper()
    has_fid = first == "FID"
    if has_fid and (len(header) < 2 or header[1].upper() != "IID"):
        raise InputError(
            "header has FID but no IID second", path=path, line=header_line, hint=_HEADER_HINT
        )
    if not has_fid and first != "IID":
        raise InputError(
            f"header does not start with FID/IID (it starts with {header[0]!r})",
            path=path,
            line=header_line,
            hint=_HEADER_HINT,
        )
    n_id = 2 if has_fid else 1
    names = header[n_id:]
    seen: dict[str, int] = {}
    for j, name in enumerate(names, n_id + 1):
        if name.upper() in {"FID", "IID"}:
            where = f"repeats an ID column (column {j})"
        elif name in seen:
            where = f"appears twice (columns {seen[name]} and {j})"
        else:
            seen[name] = j
            continue
        raise InputError(
            f"column name {name!r} {where}",
            path=path,
            line=header_line,
            hint="give every column a distinct name",
        )

    data = rows[1:]
    fast = _values_fast(data, len(header), n_id)
    if fast is not None:
        keys = [(f[0], f[1]) if has_fid else (f[0], f[0]) for _, f in data]
        if len(set(keys)) != len(keys):
            fast = None  # a duplicate sample: the loop below names its lines
    values = np.empty((len(data), len(names)), dtype=np.float64) if fast is None else fast
    first_line: dict[tuple[str, str], int] = {}
    for i, (line_no, fields) in enumerate([] if fast is not None else data):
        if len(fields) != len(header):
            raise InputError(
                f"{len(fields)} fields but the header has {len(header)} columns",
                path=path,
                line=line_no,
                hint="every row needs one value per header column; " + _MISSING_HINT,
            )
        key = (fields[0], fields[1]) if has_fid else (fields[0], fields[0])
        if key in first_line:
            who = f"FID={key[0]!r} IID={key[1]!r}" if has_fid else f"IID={key[1]!r}"
            raise InputError(
                f"duplicate sample {who} (lines {first_line[key]} and {line_no})",
                path=path,
                line=line_no,
                hint="keep one row per sample",
            )
        first_line[key] = line_no
        for j, name in enumerate(names):
            values[i, j] = _parse_value(
                fields[n_id + j], path=path, line=line_no, name=name, col_no=n_id + j + 1
            )
    iid = np.array([f[n_id - 1] for _, f in data], dtype=str)
    fid = np.array([f[0] for _, f in data], dtype=str) if has_fid else iid.copy()
    columns = {name: np.ascontiguousarray(values[:, j]) for j, name in enumerate(names)}
    return PhenoTable(path=path, fid=fid, iid=iid, columns=columns, has_fid=has_fid)


@dataclass(frozen=True)
class SampleMatch:
    """Samples present in the genotypes and in every table, in ``.fam`` order."""

    genotype_idx: np.ndarray
    table_idx: tuple[np.ndarray, ...]
    n_genotyped: int
    n_in_tables: tuple[int, ...]
    n_matched: int


def _table_rows(samples: Samples, table: PhenoTable) -> np.ndarray:
    """Row of ``table`` for each ``.fam`` sample, -1 where absent.

    By FID and IID when both the table and the genotypes have family IDs; by
    IID alone otherwise (a VCF or an IID-only ``.psam`` has none, so a table's
    FID column is not read), refusing IIDs that are not unique.
    """
    if table.has_fid and not samples.has_fid:
        iids = table.iid.tolist()
        if len(set(iids)) != len(iids):
            twice = next(i for i, n in Counter(iids).items() if n > 1)
            raise InputError(
                f"IID {twice!r} appears on more than one line, and the genotype file has no "
                "family IDs to tell them apart (a VCF, or a .psam without FID), so the table "
                "is matched on IID alone",
                path=table.path,
                hint="give each sample one line (unique IIDs), or use genotypes with family IDs",
            )
        lookup = {k: r for r, k in enumerate(iids)}
        return np.array([lookup.get(k, -1) for k in samples.iid.tolist()], dtype=np.int64)
    if table.has_fid:
        lookup = {
            k: r for r, k in enumerate(zip(table.fid.tolist(), table.iid.tolist(), strict=True))
        }
        keys = zip(samples.fid.tolist(), samples.iid.tolist(), strict=True)
        return np.array([lookup.get(k, -1) for k in keys], dtype=np.int64)
    fam_iids = samples.iid.tolist()
    if len(set(fam_iids)) != len(fam_iids):
        raise InputError(
            "the table has no FID column, but some IIDs appear in more than one .fam family",
            path=table.path,
            hint="add an FID column (header '#FID IID ...') so samples can be told apart",
        )
    lookup = {k: r for r, k in enumerate(table.iid.tolist())}
    return np.array([lookup.get(k, -1) for k in fam_iids], dtype=np.int64)


def match_samples(samples: Samples, *tables: PhenoTable) -> SampleMatch:
    """Intersect the ``.fam`` samples with every table, keeping ``.fam`` order."""
    rows = [_table_rows(samples, t) for t in tables]
    keep = np.ones(len(samples), dtype=bool)
    for r in rows:
        keep &= r >= 0
    genotype_idx = np.flatnonzero(keep).astype(np.int64)
    return SampleMatch(
        genotype_idx=genotype_idx,
        table_idx=tuple(r[genotype_idx] for r in rows),
        n_genotyped=len(samples),
        n_in_tables=tuple(len(t) for t in tables),
        n_matched=len(genotype_idx),
    )


__all__ = [
    "MISSING_TOKENS",
    "PhenoTable",
    "SampleMatch",
    "match_samples",
    "read_pheno_table",
]
