"""GWAS result files: plink2 ``--glm`` tables, a GWAS-SSF table and the two plots.

The plink2 tables follow PLINK v2.00a3.5's default ``--glm`` output: one row
per reported predictor (``ADD``, then each covariate) per variant, in the
study's variant order, with these headers::

    #CHROM POS ID REF ALT A1 TEST OBS_CT BETA SE T_STAT P ERRCODE              (.glm.linear)
    #CHROM POS ID REF ALT A1 FIRTH? TEST OBS_CT OR LOG(OR)_SE Z_STAT P ERRCODE
                                                             (.glm.logistic.hybrid)

``.glm.logistic`` (firth = "never") and ``.glm.firth`` (firth = "always")
have no ``FIRTH?`` column, as plink2 writes them. Numbers use plink2's
six-significant-digit format; a variant plink2 cannot regress gets ``NA``
values and its ERRCODE.

The GWAS-SSF table (``.ssf.tsv``) has the format's mandatory columns in order
(``chromosome base_pair_location effect_allele other_allele beta|odds_ratio
standard_error effect_allele_frequency p_value``) then ``variant_id`` and
``n``, for the ADD test of every variant; ``#NA`` marks missing values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genofed.coordinator.combine.glm import ERR_NONE, ERR_UNFINISHED, GlmResult, genomic_inflation
from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.writers.atomic import atomic_write_text
from genofed.coordinator.writers.gwas_plots import write_manhattan, write_qq
from genofed.coordinator.writers.plink_tables import format_g6_array

LINEAR_HEADER = "#CHROM\tPOS\tID\tREF\tALT\tA1\tTEST\tOBS_CT\tBETA\tSE\tT_STAT\tP\tERRCODE"
LOGISTIC_HYBRID_HEADER = (
    "#CHROM\tPOS\tID\tREF\tALT\tA1\tFIRTH?\tTEST\tOBS_CT\tOR\tLOG(OR)_SE\tZ_STAT\tP\tERRCODE"
)
LOGISTIC_HEADER = LOGISTIC_HYBRID_HEADER.replace("FIRTH?\t", "")
SSF_NA = "#NA"


def table_name(prefix: str, phenotype: str, result: GlmResult) -> str:
    """plink2's file name for this model and Firth mode."""
    if result.model == "linear":
        return f"{prefix}.{phenotype}.glm.linear"
    suffix = {"fallback": "glm.logistic.hybrid", "always": "glm.firth", "never": "glm.logistic"}
    return f"{prefix}.{phenotype}.{suffix[result.firth_mode]}"


def _utf8(values: object) -> npt.NDArray[np.bytes_]:
    """Each value's ``str()`` as UTF-8 bytes (one array element per value)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu" and arr.size and arr.min() >= 0:
        return _decimal(arr.astype(np.int64))
    text = arr.astype(str)
    if text.dtype.itemsize and text.size:
        codes = text.view(np.uint32).reshape(text.size, -1)
        if codes.max() < 0x80:  # ASCII: one byte per code point
            return _rows(codes.astype(np.uint8))
    return np.strings.encode(text, "utf-8")


def _rows(m: npt.NDArray[np.uint8]) -> npt.NDArray[np.bytes_]:
    """Each row of a byte matrix as one bytes value (trailing NULs dropped)."""
    return np.ascontiguousarray(m).view(f"S{max(m.shape[1], 1)}").ravel()


def _decimal(v: npt.NDArray[np.int64]) -> npt.NDArray[np.bytes_]:
    """``str()`` of non-negative integers, as ASCII bytes."""
    width = len(str(int(v.max())))
    digits = np.empty((v.size, width), dtype=np.uint8)
    for j in range(width):
        digits[:, j] = (v // 10 ** (width - 1 - j)) % 10 + 48
    n_digits = np.ones(v.size, dtype=np.int64)
    for j in range(1, width):
        n_digits += v >= 10**j
    out = np.zeros((v.size, width), dtype=np.uint8)
    for n in range(1, width + 1):
        sel = np.flatnonzero(n_digits == n)
        if sel.size:
            out[sel, :n] = digits[sel, width - n :]
    return _rows(out)


def _join(*columns: npt.NDArray[np.bytes_] | bytes) -> npt.NDArray[np.bytes_]:
    """Element-wise concatenation, with a tab between columns."""
    out = columns[0]
    for col in columns[1:]:
        out = np.strings.add(np.strings.add(out, b"\t"), col)
    return np.asarray(out)


def _lines(header: str, rows: npt.NDArray[np.bytes_]) -> str:
    return b"\n".join([header.encode("utf-8"), *rows.ravel().tolist()]).decode("utf-8") + "\n"


def _effect(result: GlmResult, column: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """BETA for linear models, OR = exp(BETA) for logistic ones."""
    if result.model == "linear":
        return column
    with np.errstate(over="ignore"):
        return np.exp(column)


def glm_table_text(covariates: Sequence[str], variants: VariantTable, result: GlmResult) -> str:
    """The plink2 table as text (one row per variant and reported predictor)."""
    linear = result.model == "linear"
    hybrid = not linear and result.firth_mode == "fallback"
    header = LINEAR_HEADER if linear else (LOGISTIC_HYBRID_HEADER if hybrid else LOGISTIC_HEADER)
    tests = ("ADD", *covariates)
    if not len(variants):
        return header + "\n"
    ref, alt = _utf8(variants.ref), _utf8(variants.alt)
    a1 = np.where(np.asarray(result.a1_is_ref, dtype=bool), ref, alt)
    lead = _join(_utf8(variants.chrom), _utf8(variants.pos), _utf8(variants.id), ref, alt, a1)
    if hybrid:
        lead = _join(lead, np.where(np.asarray(result.firth, dtype=bool), b"Y", b"N"))
    err = _utf8(result.errcode)
    n = _utf8(np.asarray(result.obs_ct).astype(np.int64))
    reported = (result.errcode == ERR_NONE) | (result.errcode == ERR_UNFINISHED)
    rows = np.empty((len(variants), len(tests)), dtype=object)
    for j, test in enumerate(tests):
        values = _join(
            format_g6_array(_effect(result, result.beta[:, j]), "NA"),
            format_g6_array(result.se[:, j], "NA"),
            format_g6_array(result.stat[:, j], "NA"),
            format_g6_array(result.p[:, j], "NA"),
        )
        values = np.where(reported, values, b"NA\tNA\tNA\tNA")
        rows[:, j] = _join(lead, np.asarray(test.encode("utf-8")), n, values, err).tolist()
    return _lines(header, rows)


def ssf_text(variants: VariantTable, result: GlmResult) -> str:
    """GWAS-SSF rows for the ADD test."""
    linear = result.model == "linear"
    effect_col = "beta" if linear else "odds_ratio"
    header = (
        f"chromosome\tbase_pair_location\teffect_allele\tother_allele\t{effect_col}"
        "\tstandard_error\teffect_allele_frequency\tp_value\tvariant_id\tn"
    )
    if not len(variants):
        return header + "\n"
    ref, alt = _utf8(variants.ref), _utf8(variants.alt)
    a1_is_ref = np.asarray(result.a1_is_ref, dtype=bool)
    rows = _join(
        _utf8(variants.chrom),
        _utf8(variants.pos),
        np.where(a1_is_ref, ref, alt),
        np.where(a1_is_ref, alt, ref),
        format_g6_array(_effect(result, result.beta[:, 0]), SSF_NA),
        format_g6_array(result.se[:, 0], SSF_NA),
        format_g6_array(result.a1_freq, SSF_NA),
        format_g6_array(result.p[:, 0], SSF_NA),
        _utf8(variants.id),
        _utf8(np.asarray(result.obs_ct).astype(np.int64)),
    )
    return _lines(header, rows)


def write_glm_outputs(
    out_dir: Path,
    prefix: str,
    phenotype: str,
    covariates: Sequence[str],
    variants: VariantTable,
    result: GlmResult,
    *,
    lambda_gc: float | None = None,
) -> list[str]:
    """Write the plink2 table, the GWAS-SSF table and the Manhattan and QQ plots.

    ``lambda_gc`` is :func:`genomic_inflation` of ``result`` when the caller
    already has it (computed here otherwise).
    """
    table = table_name(prefix, phenotype, result)
    stem = f"{prefix}.{phenotype}"
    ssf = f"{stem}.ssf.tsv"
    manhattan, qq = f"{stem}.manhattan.png", f"{stem}.qq.png"
    text = glm_table_text(covariates, variants, result)
    ssf_rows = ssf_text(variants, result)
    atomic_write_text(out_dir / table, text)
    atomic_write_text(out_dir / ssf, ssf_rows)
    title = f"{phenotype} ({result.model})"
    write_manhattan(out_dir / manhattan, variants.chrom, variants.pos, result.p[:, 0], title)
    lam = genomic_inflation(result) if lambda_gc is None else lambda_gc
    write_qq(out_dir / qq, result.p[:, 0], lam, title)
    return [table, ssf, manhattan, qq]


__all__ = [
    "LINEAR_HEADER",
    "LOGISTIC_HEADER",
    "LOGISTIC_HYBRID_HEADER",
    "glm_table_text",
    "ssf_text",
    "table_name",
    "write_glm_outputs",
]
