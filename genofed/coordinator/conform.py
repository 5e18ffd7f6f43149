"""Conformance check: a study's results against plink2 (lifelines) on the pooled cohort.

``genofed study conform`` (:mod:`genofed.cli.conform`) runs a study on a
synthetic federation; this module runs plink2 on the same individuals pooled
(``pooled.bed``, ``pheno.tsv``, ``covar.tsv``) and compares the two tables
column by column. Each output column gets one row: the largest absolute and
relative difference, the tolerance and pass or fail.

Tolerances (as in ``tests/reference``):

* identifiers, alleles, TEST, ERRCODE, FIRTH? and every count column: exactly;
* frequencies, HWE and linear-regression statistics and p-values: relative
  1e-5 (plink2's six printed significant digits); ``NA`` where plink2 prints it;
* logistic rows fitted by Newton: OR, SE, Z relative 1e-4 and
  ``|ln P - ln P_plink2| <= 1e-4 max(1, z^2)`` (plink2 fits in single
  precision); Firth rows: ``|d ln OR| <= 2e-3``, SE relative 1e-3, Z and P
  absolute 1e-3.

``km`` and ``cox`` are checked against lifelines on the pooled cohort instead
(as ``tests/reference/test_survival_vs_lifelines.py`` does; lifelines comes
with ``genofed[dev]`` and is imported only here, when a study has them):

* ``km``: ``N_RISK``/``N_EVENT`` exactly against counts taken from the pooled
  table; ``SURV``, ``LOWER``, ``UPPER`` against ``KaplanMeierFitter`` per group
  on the times moved up to the study's grid (follow-up beyond it censored
  there), relative 1e-9 (bands also absolute 1e-12); the log-rank ``CHISQ``
  relative 1e-9, ``P`` 1e-8, ``DF`` exactly. Cells a site withheld, and the
  rest of that curve, are not compared.
* ``cox``: ``CoxPHFitter(strata=["SITE"])`` (GenoFed stratifies by site;
  Efron ties) fitted to convergence: COEF, SE, HR, its 95 % bounds and Z
  relative 1e-6, P relative 1e-5. ``ties = "breslow"`` is not checked
  (lifelines has Efron ties only).

Analyses conform cannot check here (``pca``, ``prs``, ``pgx``, ``train``,
Breslow ``cox``, a glm with covariates that are not in ``covar.tsv``) get one
row saying "not checked by conform" and why.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genofed.common.errors import InputError
from genofed.common.study import AnalysisSpec
from genofed.common.wire.survival import COX_KIND, KM_KIND, SURVIVAL_KINDS
from genofed.coordinator.writers.atomic import atomic_write_text

#: Analysis kind -> the plink2 flag and the extension of the file it writes.
COUNT_FLAGS: Mapping[str, tuple[str, str]] = {
    "freq": ("--freq", ".afreq"),
    "missing": ("--missing", ".vmiss"),
    "gcount": ("--geno-counts", ".gcount"),
    "hardy": ("--hardy", ".hardy"),
}
GLM_KIND = "glm"
CHECKED_KINDS = (*COUNT_FLAGS, GLM_KIND, KM_KIND, COX_KIND)
#: Columns compared with a relative tolerance; every other column must be equal.
FLOAT_COLUMNS = frozenset(
    {"ALT_FREQS", "O(HET_A1)", "E(HET_A1)", "P", "MIDP", "F_MISS", "BETA", "SE", "T_STAT"}
)
LOGISTIC_COLUMNS = frozenset({"OR", "LOG(OR)_SE", "Z_STAT", "P"})
REL_TOL = 1e-5
#: linear glm: plink2 rounds to 6 digits, the federated value too (ties differ by one ulp)
GLM_LINEAR_REL_TOL = 1.01e-5
GLM_SUFFIXES = (".glm.linear", ".glm.logistic.hybrid", ".glm.firth", ".glm.logistic")
PASS, FAIL, NOT_CHECKED = "pass", "fail", "not checked by conform"
TSV_HEADER = (
    "analysis",
    "kind",
    "file",
    "column",
    "rows",
    "max_abs_diff",
    "max_rel_diff",
    "tolerance",
    "status",
    "note",
)

Runner = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class ConformRow:
    """One output column of one analysis (or one analysis conform cannot check)."""

    analysis: str
    kind: str
    file: str
    column: str
    rows: int
    max_abs: float | None
    max_rel: float | None
    tolerance: str
    status: str
    note: str = ""

    def cells(self) -> tuple[str, ...]:
        def num(x: float | None) -> str:
            return "" if x is None else f"{x:.3g}"

        return (
            self.analysis,
            self.kind,
            self.file,
            self.column,
            str(self.rows),
            num(self.max_abs),
            num(self.max_rel),
            self.tolerance,
            self.status,
            self.note,
        )


def run_plink2(plink2: Path) -> Runner:
    """A runner that calls ``plink2`` with the given arguments (one thread)."""

    def run(args: Sequence[str]) -> None:
        cmd = [str(plink2), *args, "--threads", "1"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise InputError(f"plink2 failed ({' '.join(cmd)}): {' / '.join(tail)}")

    return run


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return f.readline().rstrip("\n").split("\t")


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def not_checked(spec: AnalysisSpec, why: str) -> ConformRow:
    return ConformRow(spec.id, spec.kind, "", "", 0, None, None, "", NOT_CHECKED, why)


def _sample_filter(spec: AnalysisSpec, pheno: Path, covar: Path) -> list[str] | str:
    """plink2 flags for ``samples_with`` (--require-pheno/--require-covar), or why not."""
    wanted = list(spec.params.get("samples_with", ()))
    pheno_cols, covar_cols = _header(pheno), _header(covar)
    in_pheno = [c for c in wanted if c in pheno_cols]
    in_covar = [c for c in wanted if c in covar_cols and c not in pheno_cols]
    lost = [c for c in wanted if c not in pheno_cols and c not in covar_cols]
    if lost:
        return f"samples_with names columns not in the pooled tables: {', '.join(lost)}"
    args: list[str] = []
    if in_pheno:
        args += ["--pheno", str(pheno), "--require-pheno", *in_pheno]
    if in_covar:
        args += ["--covar", str(covar), "--require-covar", *in_covar]
    return args


def reference_counts(spec: AnalysisSpec, pooled: Path, out: Path, run: Runner) -> Path | str:
    """plink2's table for one count analysis, or why it is not checked."""
    flag, ext = COUNT_FLAGS[spec.kind]
    extra = ["midp"] if spec.kind == "hardy" and spec.params.get("midp") else []
    filt = _sample_filter(spec, pooled / "pheno.tsv", pooled / "covar.tsv")
    if isinstance(filt, str):
        return filt
    prefix = out / spec.id
    run(["--bfile", str(pooled / "pooled"), *filt, flag, *extra, "--out", str(prefix)])
    return prefix.with_name(prefix.name + ext)


def reference_glm(spec: AnalysisSpec, pooled: Path, out: Path, run: Runner) -> Path | str:
    """plink2 ``--glm`` for one glm analysis (its phenotype, covariates, Firth mode)."""
    phenotype = str(spec.params["phenotype"])
    covariates = list(spec.params["covariates"])
    pheno, covar = pooled / "pheno.tsv", pooled / "covar.tsv"
    if phenotype not in _header(pheno):
        return f"phenotype {phenotype} is not in the synthetic pheno.tsv"
    lost = [c for c in covariates if c not in _header(covar)]
    if lost:
        return f"covariates not in the synthetic covar.tsv (e.g. PCs): {', '.join(lost)}"
    if spec.params.get("model") == "linear":
        return 'model = "linear" has no plink2 --glm equivalent on a case/control column'
    modifier = {"fallback": [], "always": ["firth"], "never": ["no-firth"]}[
        str(spec.params.get("firth", "fallback"))
    ]
    args = ["--bfile", str(pooled / "pooled"), "--pheno", str(pheno), "--pheno-name", phenotype]
    if covariates:
        args += ["--covar", str(covar), "--covar-name", *covariates]
    prefix = out / spec.id
    if not covariates:
        modifier.append("allow-no-covars")
    run([*args, "--glm", *modifier, "--out", str(prefix)])
    found = [prefix.parent / f"{prefix.name}.{phenotype}{s}" for s in GLM_SUFFIXES]
    for path in found:
        if path.exists():
            return path
    return f"plink2 wrote no --glm table for {phenotype}"


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def compare_tables(spec: AnalysisSpec, ours: Path, theirs: Path) -> list[ConformRow]:
    """One row per column of ``ours`` against plink2's ``theirs``."""
    header, rows = _read(ours)
    ref_header, ref_rows = _read(theirs)
    name = ours.name
    if header != ref_header or len(rows) != len(ref_rows):
        note = (
            f"header differs: {ref_header}"
            if header != ref_header
            else f"{len(rows)} rows here, {len(ref_rows)} from plink2"
        )
        return [ConformRow(spec.id, spec.kind, name, "*", len(rows), None, None, "", FAIL, note)]
    logistic = name.endswith((".glm.logistic.hybrid", ".glm.firth", ".glm.logistic"))
    linear = name.endswith(".glm.linear")
    result = []
    col = {c: j for j, c in enumerate(header)}
    for j, column in enumerate(header):
        got, want = [r[j] for r in rows], [r[j] for r in ref_rows]
        if logistic and column in LOGISTIC_COLUMNS:
            result.append(_compare_logistic(spec, name, column, rows, ref_rows, col))
        elif column in FLOAT_COLUMNS:
            rtol = GLM_LINEAR_REL_TOL if linear else REL_TOL
            result.append(_compare_float(spec, name, column, got, want, rtol))
        else:
            result.append(_compare_exact(spec, name, column, got, want, logistic))
    return result


def _diffs(got: Sequence[str], want: Sequence[str]) -> tuple[float, float, int, int]:
    """(max |d|, max |d|/|want|, NA mismatches, non-numeric mismatches)."""
    max_abs = max_rel = 0.0
    na_bad = text_bad = 0
    for g, w in zip(got, want, strict=True):
        gf, wf = _float(g), _float(w)
        if (g == "NA") != (w == "NA"):
            na_bad += 1
        elif gf is None or wf is None:
            text_bad += g != w
        elif not (math.isnan(gf) and math.isnan(wf)):
            d = abs(gf - wf)
            max_abs = max(max_abs, d)
            max_rel = max(max_rel, d / abs(wf) if wf else (0.0 if d == 0 else math.inf))
    return max_abs, max_rel, na_bad, text_bad


def _compare_float(
    spec: AnalysisSpec, file: str, column: str, got: list[str], want: list[str], rtol: float
) -> ConformRow:
    max_abs, max_rel, na_bad, text_bad = _diffs(got, want)
    ok = max_rel <= rtol and not na_bad and not text_bad
    note = _mismatch_note(na_bad, text_bad)
    status = PASS if ok else FAIL
    return ConformRow(
        spec.id, spec.kind, file, column, len(got), max_abs, max_rel, f"rel {rtol:g}", status, note
    )


def _compare_exact(
    spec: AnalysisSpec, file: str, column: str, got: list[str], want: list[str], logistic: bool
) -> ConformRow:
    max_abs, max_rel, _, _ = _diffs(got, want)
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    if logistic and column == "ERRCODE":
        # where plink2's single-precision Firth reports UNFINISHED, a double fit may converge
        bad = [i for i in bad if not (want[i] == "UNFINISHED" and got[i] == ".")]
    numeric = all(_float(w) is not None for w in want if w != "NA")
    note = f"{len(bad)} rows differ (first: {got[bad[0]]!r} vs {want[bad[0]]!r})" if bad else ""
    return ConformRow(
        spec.id,
        spec.kind,
        file,
        column,
        len(got),
        max_abs if numeric else None,
        max_rel if numeric else None,
        "exact",
        FAIL if bad else PASS,
        note,
    )


def _mismatch_note(na_bad: int, text_bad: int) -> str:
    parts = [f"{na_bad} rows NA on one side only"] if na_bad else []
    parts += [f"{text_bad} non-numeric values differ"] if text_bad else []
    return "; ".join(parts)


def _compare_logistic(
    spec: AnalysisSpec,
    file: str,
    column: str,
    rows: list[list[str]],
    ref_rows: list[list[str]],
    col: Mapping[str, int],
) -> ConformRow:
    """OR, LOG(OR)_SE, Z_STAT or P with the per-row tolerances of the module docstring."""
    j = col[column]
    firth_j = col.get("FIRTH?")
    max_abs = max_rel = 0.0
    bad = na_bad = 0
    for r, w in zip(rows, ref_rows, strict=True):
        g, t = _float(r[j]), _float(w[j])
        if (r[j] == "NA") != (w[j] == "NA"):
            na_bad += 1
            continue
        if g is None or t is None or math.isnan(t):
            continue
        d = abs(g - t)
        max_abs, max_rel = max(max_abs, d), max(max_rel, d / abs(t) if t else 0.0)
        firth = file.endswith(".glm.firth") or (firth_j is not None and w[firth_j] == "Y")
        z = _float(w[col["Z_STAT"]]) or 0.0
        if firth:
            ok = {
                "OR": g > 0 and t > 0 and abs(math.log(g) - math.log(t)) <= 2e-3,
                "LOG(OR)_SE": d <= 1e-3 * t,
                "Z_STAT": d <= 1e-3,
                "P": d <= 1e-3,
            }[column]
        elif column == "P":
            ok = (
                g > 0
                and t > 0
                and (abs(math.log(g) - math.log(t)) <= 1e-4 * max(1.0, z * z) + 2e-5)
            )
        elif column == "Z_STAT":
            ok = d <= 1e-4 * abs(t) + 1e-6
        else:
            ok = d <= 1e-4 * abs(t)
        bad += not ok
    tolerance = {
        "OR": "rel 1e-4; Firth d ln 2e-3",
        "LOG(OR)_SE": "rel 1e-4; Firth rel 1e-3",
        "Z_STAT": "rel 1e-4; Firth abs 1e-3",
        "P": "d ln P 1e-4 max(1,z^2); Firth abs 1e-3",
    }[column]
    note = "; ".join(
        ([f"{bad} rows outside tolerance"] if bad else [])
        + ([_mismatch_note(na_bad, 0)] if na_bad else [])
    )
    status = PASS if not bad and not na_bad else FAIL
    return ConformRow(
        spec.id, spec.kind, file, column, len(rows), max_abs, max_rel, tolerance, status, note
    )


# ---- km and cox: lifelines on the pooled cohort -------------------------------------------

#: Column -> (relative, absolute) tolerance, as in tests/reference/test_survival_vs_lifelines.py.
KM_TOL: Mapping[str, tuple[float, float]] = {
    "SURV": (1e-9, 0.0),
    "LOWER": (1e-9, 1e-12),
    "UPPER": (1e-9, 1e-12),
}
LOGRANK_TOL: Mapping[str, tuple[float, float]] = {"CHISQ": (1e-9, 0.0), "P": (1e-8, 0.0)}
COX_TOL: Mapping[str, tuple[float, float]] = {
    "COEF": (1e-6, 0.0),
    "SE": (1e-6, 0.0),
    "HR": (1e-6, 0.0),
    "P": (1e-5, 0.0),
    "HR_LOWER95": (1e-6, 0.0),
    "HR_UPPER95": (1e-6, 0.0),
    "Z": (1e-6, 0.0),
}
#: lifelines' Newton stopping rule, tightened so that the fit is converged
COX_FIT_OPTIONS = {"precision": 1e-20, "r_precision": 1e-16}
_MISSING = ["NA", "nan", "NaN", ".", "-9", "-9.0"]


def _pooled_frame(pooled: Path, columns: Sequence[str]) -> Any:
    """The pooled samples with every one of ``columns`` (pheno, then covar, then SITE)."""
    import pandas as pd

    pheno = pd.read_csv(pooled / "pheno.tsv", sep="\t", na_values=_MISSING, keep_default_na=False)
    covar = pd.read_csv(pooled / "covar.tsv", sep="\t", na_values=_MISSING, keep_default_na=False)
    covar = covar[[c for c in covar.columns if c not in pheno.columns or c in ("#FID", "IID")]]
    df = pheno.merge(covar, on=["#FID", "IID"], how="left")
    sites = pooled.parent / "populations.tsv"
    if sites.exists():
        df = df.merge(pd.read_csv(sites, sep="\t")[["IID", "SITE"]], on="IID", how="left")
    lost = [c for c in columns if c not in df.columns]
    if lost:
        raise KeyError(", ".join(lost))
    return df.dropna(subset=list(columns)).reset_index(drop=True)


def _on_grid(time: Any, event: Any, grid: Sequence[float]) -> tuple[Any, Any]:
    """Times moved up to the grid point closing their interval; censored beyond the grid."""
    import numpy as np

    g = np.asarray(grid, dtype=float)
    slot = np.searchsorted(g, time, side="left")
    return g[np.minimum(slot, len(g) - 1)], np.where(slot == len(g), 0, event)


def _compare_numbers(
    spec: AnalysisSpec,
    file: str,
    column: str,
    got: Sequence[str],
    want: Sequence[float],
    tol: tuple[float, float],
    skip: Sequence[bool] = (),
    skip_note: str = "",
) -> ConformRow:
    """``got`` (text) against ``want``: ``|d| <= atol + rtol |want|``, rows in ``skip`` left out."""
    rtol, atol = tol
    max_abs = max_rel = 0.0
    bad = na_bad = skipped = 0
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if skip and skip[i]:
            skipped += 1
            continue
        gf = _float(g)
        if gf is None or math.isnan(gf) or math.isnan(w):
            na_bad += (gf is None or math.isnan(gf)) != math.isnan(w)
            continue
        d = abs(gf - w)
        max_abs = max(max_abs, d)
        max_rel = max(max_rel, d / abs(w) if w else (0.0 if d == 0 else math.inf))
        bad += not d <= atol + rtol * abs(w)
    note = "; ".join(
        ([f"{bad} rows outside tolerance"] if bad else [])
        + ([_mismatch_note(na_bad, 0)] if na_bad else [])
        + ([f"{skipped} rows {skip_note}"] if skipped else [])
    )
    tolerance = f"rel {rtol:g}" + (f" + abs {atol:g}" if atol else "")
    status = FAIL if bad or na_bad else PASS
    return ConformRow(
        spec.id, spec.kind, file, column, len(got), max_abs, max_rel, tolerance, status, note
    )


def _exact_row(
    spec: AnalysisSpec, file: str, column: str, got: Sequence[str], want: Sequence[str]
) -> ConformRow:
    return _compare_exact(spec, file, column, list(got), list(want), False)


def _km_groups(spec: AnalysisSpec, df: Any) -> tuple[list[str], Any]:
    """The study's group labels and each pooled sample's group code (-1: none), as sites do."""
    import numpy as np

    p = spec.params
    group, cuts, levels = p["group"], tuple(p["cuts"]), tuple(p["levels"])
    if not group:
        return ["ALL"], np.zeros(len(df), dtype=np.int64)
    from genofed.common.wire.survival import km_group_labels

    column = df[group].to_numpy(float)
    if cuts:
        codes = np.searchsorted(np.asarray(cuts, dtype=float), column, side="right")
    else:
        codes = np.full(len(column), -1, dtype=np.int64)
        for i, level in enumerate(levels):
            codes[column == level] = i
    return km_group_labels(group, cuts, levels), codes


def check_km(
    spec: AnalysisSpec, results: Path, files: Sequence[str], pooled: Path
) -> list[ConformRow]:
    """``km.tsv`` and ``logrank.tsv`` against lifelines on the pooled times rounded up to the grid.

    ``N_RISK``/``N_EVENT`` exactly against counts taken from the pooled table;
    ``SURV``, ``LOWER``, ``UPPER`` against ``KaplanMeierFitter`` per group;
    ``CHISQ``/``P`` against ``multivariate_logrank_test`` over the grid times
    the study's test used (``TIME_MAX``). Cells a site withheld (and the rest
    of that curve), and estimates after nobody is left at risk, are not compared.
    """
    import numpy as np
    from lifelines import KaplanMeierFitter

    p = spec.params
    time_col, event_col = str(p["time"]), str(p["event"])
    grid = [float(t) for t in p["grid"]]
    km_name = next((f for f in files if f.endswith("km.tsv")), None)
    lr_name = next((f for f in files if f.endswith("logrank.tsv")), None)
    if km_name is None or lr_name is None:
        return [not_checked(spec, "the study wrote no km.tsv / logrank.tsv for it")]
    try:
        df = _pooled_frame(pooled, [time_col, event_col, *([p["group"]] if p["group"] else [])])
    except KeyError as exc:
        return [not_checked(spec, f"columns not in the synthetic pheno/covar tables: {exc}")]
    labels, codes = _km_groups(spec, df)
    header, rows = _read(results / km_name)
    col = {c: j for j, c in enumerate(header)}
    shown = [float(r[1]) for r in rows[: len(rows) // max(len(labels), 1)]]
    if shown != grid and set(shown) < set(grid):
        grid = shown  # a site's policy merged grid times: the common grid is a subset
    raw = df[time_col].to_numpy(float)
    ev = df[event_col].to_numpy(float) == 1
    t, e = _on_grid(raw, ev.astype(int), grid)
    want_rows: list[tuple[str, float, int, int, float, float, float]] = []
    edges = np.concatenate([[-np.inf], grid[:-1]])
    for g, label in enumerate(labels):
        mine = codes == g
        n_risk = [int((raw[mine] > lo).sum()) for lo in edges]
        n_event = [
            int(((raw[mine] > lo) & (raw[mine] <= hi) & ev[mine]).sum())
            for lo, hi in zip(edges, grid, strict=True)
        ]
        if mine.any():
            kmf = KaplanMeierFitter().fit(t[mine], e[mine])
            surv = kmf.survival_function_.iloc[:, 0].reindex(grid, method="ffill").to_numpy()
            band = kmf.confidence_interval_
            lo_b = band.iloc[:, 0].reindex(grid, method="ffill").to_numpy()
            hi_b = band.iloc[:, 1].reindex(grid, method="ffill").to_numpy()
        else:
            surv = lo_b = hi_b = np.full(len(grid), np.nan)
        for j, time in enumerate(grid):
            est = (float(surv[j]), float(lo_b[j]), float(hi_b[j]))
            if n_risk[j] == 0:
                est = (math.nan, math.nan, math.nan)
            want_rows.append((label, time, n_risk[j], n_event[j], *est))
    if header[:4] != ["GROUP", "TIME", "N_RISK", "N_EVENT"] or len(rows) != len(want_rows):
        note = f"{len(rows)} rows here, {len(want_rows)} expected; header {header}"
        return [ConformRow(spec.id, spec.kind, km_name, "*", len(rows), None, None, "", FAIL, note)]
    withheld = [r[col["N_RISK"]] == "SUPPRESSED" for r in rows]
    result = [
        _exact_row(spec, km_name, "GROUP", [r[0] for r in rows], [w[0] for w in want_rows]),
        _compare_numbers(
            spec, km_name, "TIME", [r[1] for r in rows], [w[1] for w in want_rows], (0.0, 0.0)
        ),
    ]
    for k, name in ((2, "N_RISK"), (3, "N_EVENT")):
        got = [r[col[name]] for r in rows]
        want = [g if s else str(w[k]) for g, w, s in zip(got, want_rows, withheld, strict=True)]
        row = _exact_row(spec, km_name, name, got, want)
        if any(withheld):
            row = dataclasses.replace(row, note=_join(row.note, f"{sum(withheld)} cells withheld"))
        result.append(row)
    for k, name in ((4, "SURV"), (5, "LOWER"), (6, "UPPER")):
        got = [r[col[name]] for r in rows]
        want = [float(w[k]) for w in want_rows]
        result.append(
            _compare_numbers(
                spec, km_name, name, got, want, KM_TOL[name], withheld, "withheld, not compared"
            )
        )
    result.extend(_check_logrank(spec, results / lr_name, labels, codes, t, e))
    return result


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _check_logrank(
    spec: AnalysisSpec, path: Path, labels: Sequence[str], codes: Any, t: Any, e: Any
) -> list[ConformRow]:
    import numpy as np
    from lifelines.statistics import multivariate_logrank_test

    header, rows = _read(path)
    col = {c: j for j, c in enumerate(header)}
    name = path.name
    if len(labels) < 2:
        return []
    got = {c: [r[col[c]] for r in rows] for c in ("CHISQ", "DF", "P")}
    tmax = _float(rows[0][col["TIME_MAX"]]) if rows else None
    present = [g for g in range(len(labels)) if (codes == g).any()]
    if tmax is None or math.isnan(tmax) or len(present) < 2:
        ref_chisq = ref_p = math.nan
        ref_df = "NA"
    else:
        keep = codes >= 0
        tt = np.minimum(t[keep], tmax)  # the study's test stops at TIME_MAX: censor there
        ee = np.where(t[keep] <= tmax, e[keep], 0)
        ref = multivariate_logrank_test(tt, codes[keep], ee)
        ref_chisq, ref_p, ref_df = (
            float(ref.test_statistic),
            float(ref.p_value),
            str(len(present) - 1),
        )
    n = len(rows)
    return [
        _compare_numbers(spec, name, "CHISQ", got["CHISQ"], [ref_chisq] * n, LOGRANK_TOL["CHISQ"]),
        _exact_row(spec, name, "DF", got["DF"], [ref_df] * n),
        _compare_numbers(spec, name, "P", got["P"], [ref_p] * n, LOGRANK_TOL["P"]),
    ]


def check_cox(
    spec: AnalysisSpec, results: Path, files: Sequence[str], pooled: Path
) -> list[ConformRow]:
    """``cox.tsv`` against lifelines' ``CoxPHFitter`` stratified by site (Efron ties)."""
    from lifelines import CoxPHFitter

    p = spec.params
    if p.get("ties", "efron") != "efron":
        return [not_checked(spec, f'lifelines has Efron ties only, not ties = "{p["ties"]}"')]
    name = next((f for f in files if f.endswith("cox.tsv")), None)
    if name is None:
        return [not_checked(spec, "the study wrote no cox.tsv for it")]
    terms = [str(c) for c in p["covariates"]]
    time_col, event_col = str(p["time"]), str(p["event"])
    try:
        df = _pooled_frame(pooled, [time_col, event_col, *terms, "SITE"])
    except KeyError as exc:
        return [not_checked(spec, f"columns not in the synthetic tables: {exc}")]
    df = df[[*terms, time_col, event_col, "SITE"]].copy()
    df[event_col] = (df[event_col] == 1).astype(int)
    ref = CoxPHFitter().fit(
        df, time_col, event_col, strata=["SITE"], fit_options=dict(COX_FIT_OPTIONS)
    )
    summary = ref.summary.loc[terms]
    want = {
        "COEF": summary["coef"],
        "SE": summary["se(coef)"],
        "HR": summary["exp(coef)"],
        "P": summary["p"],
        "HR_LOWER95": summary["exp(coef) lower 95%"],
        "HR_UPPER95": summary["exp(coef) upper 95%"],
        "Z": summary["z"],
    }
    header, rows = _read(results / name)
    col = {c: j for j, c in enumerate(header)}
    if len(rows) != len(terms) or not set(want) <= set(col):
        note = f"{len(rows)} rows here for {len(terms)} terms; header {header}"
        return [ConformRow(spec.id, spec.kind, name, "*", len(rows), None, None, "", FAIL, note)]
    result = [_exact_row(spec, name, "TERM", [r[col["TERM"]] for r in rows], terms)]
    for column, values in want.items():
        got = [r[col[column]] for r in rows]
        result.append(
            _compare_numbers(spec, name, column, got, [float(v) for v in values], COX_TOL[column])
        )
    return result


def reference_table(spec: AnalysisSpec, pooled: Path, out: Path, run: Runner) -> Path | str:
    """plink2's table for ``spec``, or why conform does not check it."""
    if spec.kind in COUNT_FLAGS:
        return reference_counts(spec, pooled, out, run)
    if spec.kind == GLM_KIND:
        return reference_glm(spec, pooled, out, run)
    return f"no central reference for {spec.kind!r} in conform"


def our_table(spec: AnalysisSpec, files: Sequence[str]) -> str | None:
    """The plink2-format table among the files one analysis wrote."""
    if spec.kind in COUNT_FLAGS:
        ext = COUNT_FLAGS[spec.kind][1]
        return next((f for f in files if f.endswith(ext)), None)
    return next((f for f in files if f.endswith(GLM_SUFFIXES)), None)


def check_analyses(
    analyses: Sequence[AnalysisSpec],
    results: Path,
    analysis_files: Mapping[str, Sequence[str]],
    pooled: Path,
    work: Path,
    run: Runner,
) -> list[ConformRow]:
    """Compare each analysis's tables in ``results`` with plink2 (lifelines for km, cox)."""
    rows: list[ConformRow] = []
    for spec in analyses:
        if spec.kind not in CHECKED_KINDS:
            rows.append(not_checked(spec, f"no central reference for {spec.kind!r}"))
            continue
        if spec.kind == KM_KIND:
            rows.extend(check_km(spec, results, analysis_files.get(spec.id, ()), pooled))
            continue
        if spec.kind == COX_KIND:
            rows.extend(check_cox(spec, results, analysis_files.get(spec.id, ()), pooled))
            continue
        ours = our_table(spec, analysis_files.get(spec.id, ()))
        if ours is None:
            rows.append(not_checked(spec, "the study wrote no plink2 table for it"))
            continue
        ref = reference_table(spec, pooled, work, run)
        if isinstance(ref, str):
            rows.append(not_checked(spec, ref))
            continue
        rows.extend(compare_tables(spec, results / ours, ref))
    return rows


def write_conform_tsv(path: Path, rows: Sequence[ConformRow]) -> Path:
    lines = ["\t".join(TSV_HEADER), *("\t".join(r.cells()) for r in rows)]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def all_pass(rows: Sequence[ConformRow]) -> bool:
    return not any(r.status == FAIL for r in rows)


__all__ = [
    "CHECKED_KINDS",
    "FAIL",
    "NOT_CHECKED",
    "PASS",
    "SURVIVAL_KINDS",
    "ConformRow",
    "Runner",
    "all_pass",
    "check_analyses",
    "check_cox",
    "check_km",
    "compare_tables",
    "not_checked",
    "run_plink2",
    "write_conform_tsv",
]
