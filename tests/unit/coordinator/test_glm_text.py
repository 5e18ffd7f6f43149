"""Vectorized GWAS text output: byte for byte what the per-value reference code gives."""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from genofed.common.chromosomes import bare_chrom
from genofed.coordinator.combine.glm import ERR_NONE, ERR_UNFINISHED, GlmResult, genomic_inflation
from genofed.coordinator.combine.harmonize import VariantTable, _keys
from genofed.coordinator.writers.analyst_report._html import iter_tsv
from genofed.coordinator.writers.analyst_report.sections import TOP_HITS, _top_add_rows
from genofed.coordinator.writers.glm_tables import _utf8, glm_table_text, ssf_text
from genofed.coordinator.writers.plink_tables import format_g6, format_g6_array


def _edge_values() -> np.ndarray:
    special = [
        0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, 0.5, 0.1, 0.2, 0.3, 1 / 3, 2 / 3, 12.5,
        9.999995, 9.9999949999, 9.999995000001, 9.9999950000001, 99999.95, 999999.5, 999999.4,
        999999.49999, 1e6, 1e5, 123456.5, 123457.5, 1234565.0, 0.1234565, 1e-4, 9.999995e-5,
        0.00009999995, 0.000099999949, 2.5e-7, 1e-300, 5e-324, 2.2250738585072014e-308,
        1.7976931348623157e308, 1e100, 1e-100, 1e99, 9.999995e99, 9.999995e-100, 1e300, 1.5e300,
        123456.0, 100000.0, 10.0, 100.0, 120000.0, 3.0, 42.0, 1e-5, 1.00000049999,
    ]  # fmt: skip
    return np.array(special, dtype=np.float64)


def _random_values(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [
        rng.standard_normal(n) * 10.0 ** rng.integers(-12, 12, n),
        rng.random(n),
        rng.random(n) * 1e-3,
        np.frombuffer(rng.bytes(8 * n), dtype=np.float64),  # any bit pattern, nan and inf too
        rng.integers(-(10**7), 10**7, n).astype(np.float64),
    ]
    # seven-digit values ending in 5 (7th-digit ties and their neighbours) at many scales
    tie = (rng.integers(1_000_000, 10_000_000, n) // 10 * 10 + 5) / 1e6
    tie = tie * 10.0 ** rng.integers(-20, 20, n).astype(np.float64)
    parts += [tie, np.nextafter(tie, np.inf), np.nextafter(tie, -np.inf)]
    p10 = 10.0 ** np.arange(-320, 309)
    parts += [p10, np.nextafter(p10, 0), np.nextafter(p10, np.inf), p10 * 0.9999995]
    x = np.concatenate([*parts, _edge_values()])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("seed", [0, 1])
def test_format_g6_array__matches_format_g6(seed: int) -> None:
    x = _random_values(40_000, seed)
    got = format_g6_array(x).tolist()
    want = [format_g6(v).encode() for v in x.tolist()]
    assert got == want


def test_format_g6_array__na_replaces_only_non_finite() -> None:
    x = _edge_values()
    got = [b.decode() for b in format_g6_array(x, "NA").tolist()]
    assert got == [format_g6(v) if np.isfinite(v) else "NA" for v in x.tolist()]


def test_format_g6_array__shapes() -> None:
    assert format_g6_array(np.array([])).tolist() == []
    assert format_g6_array([[1.5, -2.0]]).tolist() == [b"1.5", b"-2"]


def test_utf8__is_str_of_each_value() -> None:
    values = [
        np.array([0, 7, 10, 99, 100, 123456789, 2**62]),
        np.array(["rs1", "", "chr22", "é-ß", "ACGT" * 10]),
        np.array([".", "UNFINISHED"], dtype=object),
        np.array([-3, 5]),
    ]
    for v in values:
        assert _utf8(v).tolist() == [str(x).encode() for x in v.tolist()]


# --- the per-value code the vectorized writers replace ------------------------------------------


def _num(value: float, na: str = "NA") -> str:
    return format_g6(value) if np.isfinite(value) else na


def _reference_glm_text(header: str, tests: tuple[str, ...], v: VariantTable, r: GlmResult) -> str:
    linear = r.model == "linear"
    hybrid = not linear and r.firth_mode == "fallback"
    lines = [header]
    reported = (r.errcode == ERR_NONE) | (r.errcode == ERR_UNFINISHED)
    for i in range(len(v)):
        ref, alt = str(v.ref[i]), str(v.alt[i])
        a1 = ref if r.a1_is_ref[i] else alt
        lead = f"{v.chrom[i]}\t{v.pos[i]}\t{v.id[i]}\t{ref}\t{alt}\t{a1}"
        if hybrid:
            lead += "\tY" if r.firth[i] else "\tN"
        for j, test in enumerate(tests):
            if reported[i]:
                beta = float(r.beta[i, j])
                effect = _num(beta) if linear else _num(float(np.exp(beta)))
                values = (
                    f"{effect}\t{_num(float(r.se[i, j]))}\t{_num(float(r.stat[i, j]))}"
                    f"\t{_num(float(r.p[i, j]))}"
                )
            else:
                values = "NA\tNA\tNA\tNA"
            lines.append(f"{lead}\t{test}\t{int(r.obs_ct[i])}\t{values}\t{r.errcode[i]}")
    return "\n".join(lines) + "\n"


def _reference_ssf_rows(v: VariantTable, r: GlmResult) -> list[str]:
    linear = r.model == "linear"
    rows = []
    for i in range(len(v)):
        ref, alt = str(v.ref[i]), str(v.alt[i])
        a1, other = (ref, alt) if r.a1_is_ref[i] else (alt, ref)
        beta = float(r.beta[i, 0])
        effect = _num(beta if linear else float(np.exp(beta)), "#NA")
        rows.append(
            f"{v.chrom[i]}\t{v.pos[i]}\t{a1}\t{other}\t{effect}\t{_num(float(r.se[i, 0]), '#NA')}"
            f"\t{_num(float(r.a1_freq[i]), '#NA')}\t{_num(float(r.p[i, 0]), '#NA')}\t{v.id[i]}"
            f"\t{int(r.obs_ct[i])}"
        )
    return rows


def _random_study(
    n: int, k: int, model: str, firth_mode: str, seed: int
) -> tuple[VariantTable, GlmResult]:
    rng = np.random.default_rng(seed)
    alleles = np.array(["A", "C", "G", "T", "AT", "GCC", "é"])
    variants = VariantTable(
        chrom=rng.choice(np.array(["1", "2", "22", "chr7"]), n),
        pos=rng.integers(1, 250_000_000, n).astype(np.int64),
        id=np.array([f"rs{i}" if i % 17 else f"var_{i}_ü" for i in range(n)]),
        ref=rng.choice(alleles, n),
        alt=rng.choice(alleles, n),
    )
    p = k + 1
    errs = np.array([ERR_NONE] * 6 + [ERR_UNFINISHED, "CONST_OMITTED_ALLELE", "VIF_TOO_HIGH"])
    beta = rng.standard_normal((n, p)) * 10.0 ** rng.integers(-6, 3, (n, p))
    beta[rng.random((n, p)) < 0.02] = 800.0  # exp overflows to inf
    pv = rng.random((n, p)) ** 6
    pv[rng.random((n, p)) < 0.05] = np.nan
    result = GlmResult(
        model=model,
        firth_mode=firth_mode,
        obs_ct=rng.integers(0, 20_000, n).astype(np.int64),
        a1_is_ref=rng.random(n) < 0.5,
        a1_freq=np.where(rng.random(n) < 0.05, np.nan, rng.random(n)),
        beta=beta,
        se=np.abs(rng.standard_normal((n, p))),
        stat=rng.standard_normal((n, p)) * 5,
        p=pv,
        errcode=rng.choice(errs, n).astype(object),
        firth=rng.random(n) < 0.1,
    )
    return variants, result


@pytest.mark.parametrize(
    ("model", "firth_mode", "k"),
    [("linear", "fallback", 2), ("logistic", "fallback", 1), ("logistic", "never", 0)],
)
def test_glm_and_ssf_text__match_per_row_reference(model: str, firth_mode: str, k: int) -> None:
    covariates = tuple(f"C{i}" for i in range(1, k + 1))
    variants, result = _random_study(3_000, k, model, firth_mode, seed=k)
    text = glm_table_text(covariates, variants, result)
    header = text.split("\n", 1)[0]
    with np.errstate(over="ignore"):
        want_text = _reference_glm_text(header, ("ADD", *covariates), variants, result)
        want_ssf = _reference_ssf_rows(variants, result)
    assert text == want_text
    ssf = ssf_text(variants, result).split("\n")
    assert ssf[1:-1] == want_ssf
    assert ssf[-1] == ""


def test_glm_text__no_variants() -> None:
    variants, result = _random_study(0, 1, "linear", "fallback", seed=0)
    assert glm_table_text(("C1",), variants, result).count("\n") == 1
    assert ssf_text(variants, result).count("\n") == 1


def _reference_top(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = iter_tsv(path)
    header = next(rows, [])
    test, p_col = header.index("TEST"), header.index("P")
    top = heapq.nsmallest(
        TOP_HITS,
        (r for r in rows if r[test] == "ADD" and r[p_col] not in ("NA", "nan")),
        key=lambda r: float(r[p_col]),
    )
    return header, top


def test_top_add_rows__match_reference(tmp_path: Path) -> None:
    variants, result = _random_study(2_000, 2, "linear", "fallback", seed=5)
    result.p[::7, 0] = 1e-9  # many ties among the top hits
    text = glm_table_text(("C1", "C2"), variants, result)
    path = tmp_path / "t.glm.linear"
    path.write_text(text, encoding="utf-8")
    assert _top_add_rows(path) == _reference_top(path)
    # "ADD" in another field, on a row that would be a top hit
    lines = text.split("\n")
    fields = lines[3].split("\t")  # a C1 row
    fields[2], fields[11] = "ADD", "1e-300"
    lines[3] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    assert _top_add_rows(path) == _reference_top(path)


def test_keys__match_per_variant_reference() -> None:
    rng = np.random.default_rng(3)
    n = 500
    table = VariantTable(
        chrom=rng.choice(np.array(["1", "chr2", "CHR3", "Chr22", "chrX", "ch"]), n),
        pos=rng.integers(1, 10_000, n).astype(np.int64),
        id=np.array([f"v{i}" for i in range(n)]),
        ref=rng.choice(np.array(["A", "C", "AC", "a", "é", ""]), n),
        alt=rng.choice(np.array(["G", "T", "A", "CA", "Z"]), n),
    )
    chroms = [bare_chrom(str(c)) for c in table.chrom]
    want = [
        (c, int(p), *sorted((str(r), str(a))))
        for c, p, r, a in zip(chroms, table.pos, table.ref, table.alt, strict=True)
    ]
    keys, positions = _keys(table)
    assert keys == want
    assert positions == [(c, int(p)) for c, p in zip(chroms, table.pos, strict=True)]


def _lambda_reference(p: np.ndarray) -> float:
    p = p[np.isfinite(p)]
    if not p.size:
        return float("nan")
    return float(np.median(stats.chi2.isf(p, 1)) / stats.chi2.ppf(0.5, 1))


def _with_p(p: np.ndarray) -> GlmResult:
    n = p.size
    return GlmResult(
        model="linear",
        firth_mode="never",
        obs_ct=np.zeros(n, dtype=np.int64),
        a1_is_ref=np.zeros(n, dtype=bool),
        a1_freq=np.zeros(n),
        beta=np.zeros((n, 1)),
        se=np.zeros((n, 1)),
        stat=np.zeros((n, 1)),
        p=p[:, None],
        errcode=np.full(n, ERR_NONE, dtype=object),
        firth=np.zeros(n, dtype=bool),
    )


@pytest.mark.parametrize("seed", range(6))
def test_genomic_inflation__is_median_of_every_chisq(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cases = [
        rng.random(100_001),
        rng.random(100_000),
        rng.random(20_000) ** 8,  # inflated
        np.round(rng.random(30_000), 3),  # many ties
        np.concatenate([rng.random(5_000), np.zeros(50), np.ones(50), [np.nan] * 10]),
        rng.random(999),  # too few for the band
        np.concatenate([np.full(10_000, 0.5), rng.random(11)]),
        np.concatenate([rng.random(3_000), [1.5]]),  # not a probability: nan, as before
        rng.random(6_000) * 1e-250,
    ]
    for p in cases:
        got, want = genomic_inflation(_with_p(p)), _lambda_reference(p)
        assert (np.isnan(got) and np.isnan(want)) or got == want
