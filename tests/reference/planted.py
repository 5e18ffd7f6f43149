"""Plant chosen genotypes and covariates into a synthetic cohort, in site and pooled files.

A ``genofed synth`` cohort has common and rare variants drawn from a
population model; reference tests of edge cases need exact ones (a single
carrier who is a case, every carrier a case, a covariate that is constant or
a linear function of another). :func:`plant_genotypes` overwrites whole
variant rows of ``pooled/pooled.bed`` and of each site's
``data/genotypes.bed`` alike, and :func:`add_covariate` appends a column to
``covar.tsv`` in both places, so the federated run and plink2 on the pooled
fileset still see the same data. Samples are indexed in the pooled ``.fam``
order, which lists every site's samples in site order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

#: PLINK 1 .bed codes by ALT (the .bim's first allele) count; -1 is a missing call.
_BED_CODE = {2: 0b00, -1: 0b01, 1: 0b10, 0: 0b11}


def _sites(cohort: Path) -> list[Path]:
    return sorted(p for p in cohort.glob("site-*") if p.is_dir())


def _site_sizes(cohort: Path) -> list[int]:
    return [len((s / "data" / "genotypes.fam").read_text().splitlines()) for s in _sites(cohort)]


def _rewrite_rows(bed: Path, n_samples: int, rows: Mapping[int, np.ndarray]) -> None:
    data = np.fromfile(bed, dtype=np.uint8)
    width = (n_samples + 3) // 4
    body = data[3:].reshape(-1, width)
    for variant, alt in rows.items():
        codes = np.zeros(width * 4, dtype=np.uint8)
        for count, code in _BED_CODE.items():
            codes[:n_samples][alt == count] = code
        packed = np.zeros(width, dtype=np.uint8)
        for k in range(4):
            packed |= codes[k::4] << (2 * k)
        body[variant] = packed
    data[3:] = body.ravel()
    data.tofile(bed)


def plant_genotypes(cohort: Path, rows: Mapping[int, np.ndarray]) -> None:
    """Set variant ``v``'s calls to ``rows[v]`` (ALT counts 0, 1, 2; -1 missing) everywhere."""
    sizes = _site_sizes(cohort)
    n = sum(sizes)
    for alt in rows.values():
        if alt.shape != (n,) or not np.isin(alt, list(_BED_CODE)).all():
            raise ValueError(f"each planted row needs {n} ALT counts in {{0, 1, 2, -1}}")
    _rewrite_rows(cohort / "pooled" / "pooled.bed", n, rows)
    start = 0
    for site, size in zip(_sites(cohort), sizes, strict=True):
        part = {v: alt[start : start + size] for v, alt in rows.items()}
        _rewrite_rows(site / "data" / "genotypes.bed", size, part)
        start += size


def pooled_column(cohort: Path, table: str, column: str) -> np.ndarray:
    """A column of ``pooled/<table>`` as floats (NA as NaN), in the pooled ``.fam`` order."""
    lines = (cohort / "pooled" / table).read_text().splitlines()
    j = lines[0].split("\t").index(column)
    values = [line.split("\t")[j] for line in lines[1:]]
    return np.array([np.nan if v == "NA" else float(v) for v in values])


def add_covariate(cohort: Path, name: str, values: np.ndarray) -> None:
    """Append covariate ``name`` (one value per pooled sample) to every ``covar.tsv``."""
    text = [f"{v!r}" for v in np.asarray(values, dtype=np.float64).tolist()]
    tables = [cohort / "pooled" / "covar.tsv"]
    tables += [s / "data" / "covar.tsv" for s in _sites(cohort)]
    offsets = [0, 0, *np.cumsum(_site_sizes(cohort))[:-1].tolist()]
    for table, start in zip(tables, offsets, strict=True):
        lines = table.read_text().splitlines()
        out = [f"{lines[0]}\t{name}"]
        out += [f"{line}\t{text[start + i]}" for i, line in enumerate(lines[1:])]
        table.write_text("\n".join(out) + "\n")
