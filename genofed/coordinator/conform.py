"""Conformance check: a study's results against plink2 run centrally on the pooled cohort.

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

Analyses plink2 cannot check here (``pca``, ``prs``, ``pgx``, ``km``, ``cox``,
``train``, a glm with covariates that are not in ``covar.tsv``) get one row
saying "not checked by conform" and why.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from genofed.common.errors import InputError
from genofed.common.study import AnalysisSpec
from genofed.coordinator.writers.atomic import atomic_write_text

#: Analysis kind -> the plink2 flag and the extension of the file it writes.
COUNT_FLAGS: Mapping[str, tuple[str, str]] = {
    "freq": ("--freq", ".afreq"),
    "missing": ("--missing", ".vmiss"),
    "gcount": ("--geno-counts", ".gcount"),
    "hardy": ("--hardy", ".hardy"),
}
GLM_KIND = "glm"
CHECKED_KINDS = (*COUNT_FLAGS, GLM_KIND)
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
    """Compare each analysis's table in ``results`` with plink2 on ``pooled``."""
    rows: list[ConformRow] = []
    for spec in analyses:
        if spec.kind not in CHECKED_KINDS:
            rows.append(not_checked(spec, f"no central reference for {spec.kind!r}"))
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
    "ConformRow",
    "Runner",
    "all_pass",
    "check_analyses",
    "compare_tables",
    "not_checked",
    "run_plink2",
    "write_conform_tsv",
]
