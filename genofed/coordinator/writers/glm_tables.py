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

from genofed.coordinator.combine.glm import ERR_NONE, ERR_UNFINISHED, GlmResult, genomic_inflation
from genofed.coordinator.combine.harmonize import VariantTable
from genofed.coordinator.writers.atomic import atomic_write_text
from genofed.coordinator.writers.gwas_plots import write_manhattan, write_qq
from genofed.coordinator.writers.plink_tables import format_g6

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


def _num(value: float) -> str:
    return format_g6(value) if np.isfinite(value) else "NA"


def glm_table_text(covariates: Sequence[str], variants: VariantTable, result: GlmResult) -> str:
    """The plink2 table as text (one row per variant and reported predictor)."""
    linear = result.model == "linear"
    hybrid = not linear and result.firth_mode == "fallback"
    header = LINEAR_HEADER if linear else (LOGISTIC_HYBRID_HEADER if hybrid else LOGISTIC_HEADER)
    tests = ("ADD", *covariates)
    lines = [header]
    reported = (result.errcode == ERR_NONE) | (result.errcode == ERR_UNFINISHED)
    for v in range(len(variants)):
        ref, alt = str(variants.ref[v]), str(variants.alt[v])
        a1 = ref if result.a1_is_ref[v] else alt
        lead = f"{variants.chrom[v]}\t{variants.pos[v]}\t{variants.id[v]}\t{ref}\t{alt}\t{a1}"
        if hybrid:
            lead += "\tY" if result.firth[v] else "\tN"
        err = str(result.errcode[v])
        n = int(result.obs_ct[v])
        for j, test in enumerate(tests):
            if reported[v]:
                beta, se = float(result.beta[v, j]), float(result.se[v, j])
                effect = _num(beta) if linear else _num(float(np.exp(beta)))
                stat, p = float(result.stat[v, j]), float(result.p[v, j])
                values = f"{effect}\t{_num(se)}\t{_num(stat)}\t{_num(p)}"
            else:
                values = "NA\tNA\tNA\tNA"
            lines.append(f"{lead}\t{test}\t{n}\t{values}\t{err}")
    return "\n".join(lines) + "\n"


def ssf_text(variants: VariantTable, result: GlmResult) -> str:
    """GWAS-SSF rows for the ADD test."""
    linear = result.model == "linear"
    effect_col = "beta" if linear else "odds_ratio"
    header = (
        f"chromosome\tbase_pair_location\teffect_allele\tother_allele\t{effect_col}"
        "\tstandard_error\teffect_allele_frequency\tp_value\tvariant_id\tn"
    )

    def num(x: float) -> str:
        return format_g6(x) if np.isfinite(x) else SSF_NA

    lines = [header]
    for v in range(len(variants)):
        ref, alt = str(variants.ref[v]), str(variants.alt[v])
        a1, other = (ref, alt) if result.a1_is_ref[v] else (alt, ref)
        beta = float(result.beta[v, 0])
        effect = num(beta if linear else float(np.exp(beta)))
        lines.append(
            f"{variants.chrom[v]}\t{variants.pos[v]}\t{a1}\t{other}\t{effect}"
            f"\t{num(float(result.se[v, 0]))}\t{num(float(result.a1_freq[v]))}"
            f"\t{num(float(result.p[v, 0]))}\t{variants.id[v]}\t{int(result.obs_ct[v])}"
        )
    return "\n".join(lines) + "\n"


def write_glm_outputs(
    out_dir: Path,
    prefix: str,
    phenotype: str,
    covariates: Sequence[str],
    variants: VariantTable,
    result: GlmResult,
) -> list[str]:
    """Write the plink2 table, the GWAS-SSF table and the Manhattan and QQ plots."""
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
    write_qq(out_dir / qq, result.p[:, 0], genomic_inflation(result), title)
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
