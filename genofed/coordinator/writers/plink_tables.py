"""Writers for PLINK 2 (v2.00a3.5) per-variant report tables.

``.afreq`` (``--freq``), ``.vmiss`` (``--missing``), ``.gcount``
(``--geno-counts``) and ``.hardy`` (``--hardy [midp]``), laid out exactly as
PLINK 2 writes them: same header line, column order, tab separators and
number formatting, so downstream tools and ``diff`` treat pooled federated
results like a centralized run.

Number formatting follows PLINK 2's ``dtoa_g``: six significant digits,
``%g`` style (trailing zeros dropped, exponent form below 1e-4 and from
999999.5, two-digit minimum exponent), ``nan`` and ``inf`` in lower case.
PLINK 2 rounds half-way cases to even on a decimal scaled copy; ``%.6g``
rounds the exact binary value, so a value lying on a 7th-digit tie can differ
in the last printed digit — never by more than one unit in the 6th digit.

Only autosomal variants belong here: PLINK 2 writes chrX/Y/MT differently
(HAP_* counts, ``.hardy.x``), and the caller rejects them upstream.

A variant that a site withheld under small-cell suppression
(``coordinator/writers/suppressed.py``) is passed in ``withheld``: its row keeps the
variant columns and prints ``NA`` in every count and statistic column.

Every file goes through :func:`~genofed.coordinator.writers.atomic.atomic_write_text`
(temporary file in the target directory, then ``os.replace``), so a reader
never sees half a table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from genofed.coordinator.combine.freq import FreqResult, GenoCountsResult, MissingnessResult
from genofed.coordinator.combine.hardy import HardyResult
from genofed.coordinator.writers.atomic import atomic_write_text

__all__ = [
    "AFREQ_HEADER",
    "GCOUNT_HEADER",
    "HARDY_HEADER",
    "HARDY_MIDP_HEADER",
    "VMISS_HEADER",
    "VariantColumns",
    "format_g6",
    "format_g6_array",
    "write_afreq",
    "write_gcount",
    "write_hardy",
    "write_vmiss",
]

AFREQ_HEADER = "#CHROM\tID\tREF\tALT\tALT_FREQS\tOBS_CT"
VMISS_HEADER = "#CHROM\tID\tMISSING_CT\tOBS_CT\tF_MISS"
GCOUNT_HEADER = (
    "#CHROM\tID\tREF\tALT\tHOM_REF_CT\tHET_REF_ALT_CTS\tTWO_ALT_GENO_CTS"
    "\tHAP_REF_CT\tHAP_ALT_CTS\tMISSING_CT"
)
HARDY_HEADER = "#CHROM\tID\tA1\tAX\tHOM_A1_CT\tHET_A1_CT\tTWO_AX_CT\tO(HET_A1)\tE(HET_A1)\tP"
HARDY_MIDP_HEADER = HARDY_HEADER[: -len("P")] + "MIDP"


@dataclass(frozen=True)
class VariantColumns:
    """Per-variant metadata printed in the leading columns (one entry per variant).

    ``pos`` is kept for callers and for reports that print POS; the default
    PLINK 2 tables written here do not include it.
    """

    chrom: Sequence[str]
    pos: Sequence[int] | npt.NDArray[np.int64]
    id: Sequence[str]
    ref: Sequence[str]
    alt: Sequence[str]

    def __post_init__(self) -> None:
        lengths = {len(self.chrom), len(self.pos), len(self.id), len(self.ref), len(self.alt)}
        if len(lengths) != 1:
            raise ValueError(
                "VariantColumns fields must have one length; got "
                f"chrom={len(self.chrom)} pos={len(self.pos)} id={len(self.id)} "
                f"ref={len(self.ref)} alt={len(self.alt)}"
            )

    def __len__(self) -> int:
        return len(self.id)


def format_g6(value: float) -> str:
    """Format a float as PLINK 2's ``dtoa_g`` does (6 significant digits)."""
    return "%.6g" % value  # noqa: UP031 - %g is the spec, not a style choice


#: Correctly rounded powers of ten, 1e0 .. 1e308.
_POW10 = np.array([float(10**i) for i in range(309)])
#: A value lies this close to a 7th-digit tie (in units of the 6th digit) goes to ``%.6g``.
_TIE_MARGIN = 1e-6


def _ascii_rows(m: npt.NDArray[np.uint8]) -> npt.NDArray[np.bytes_]:
    """Each row of a byte matrix as one bytes value (trailing NULs dropped)."""
    return np.ascontiguousarray(m).view(f"S{m.shape[1]}").ravel()


def format_g6_array(values: npt.ArrayLike, na: str | None = None) -> npt.NDArray[np.bytes_]:
    """:func:`format_g6` of every value, as an array of ASCII ``bytes`` (vectorized).

    Byte for byte what ``format_g6`` gives; ``na``, when given, replaces the
    text of each non-finite value (``nan``, ``inf``, ``-inf``).

    Each value is scaled to six integer digits in double precision (error
    below 1e-9 of a unit in the 6th digit) and rounded; values within
    :data:`_TIE_MARGIN` of a 7th-digit tie, zero-adjacent (below 1e-300) or
    huge (above 1e300) values, and non-finite ones are formatted one at a time
    with ``%.6g``, so the vectorized path only handles values whose rounding
    is unambiguous.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    out = np.empty(n, dtype="S16")
    if n == 0:
        return out
    a = np.abs(x)
    with np.errstate(invalid="ignore"):
        idx = np.flatnonzero((a >= 1e-300) & (a <= 1e300))
    av = a[idx]
    e = np.floor(np.log10(av)).astype(np.int64)
    # log10 can be one off near powers of ten: settle e so that 1e5 <= av * 10**(5 - e) < 1e6
    # (m just under 1e5 rounds up to 100000, which is the right result for this e).
    for _ in range(4):
        k = 5 - e
        m = np.where(k >= 0, av * _POW10[np.clip(k, 0, 308)], av / _POW10[np.clip(-k, 0, 308)])
        lo, hi = m < 99_999.5, m >= 1e6
        if not (lo.any() or hi.any()):
            break
        e = e - lo + hi
    else:  # pragma: no cover - m moves by a factor of ten per step
        raise AssertionError("format_g6_array: exponent did not settle")
    ok = np.abs(m - np.floor(m) - 0.5) >= _TIE_MARGIN
    idx, m, e = idx[ok], m[ok], e[ok]
    r = np.rint(m).astype(np.int32)
    up = r == 1_000_000
    r[up] = 100_000
    e[up] += 1
    digits = np.empty((r.size, 6), dtype=np.uint8)
    for i in range(6):
        digits[:, i] = (r // 10 ** (5 - i)) % 10 + 48
    tz = np.zeros(r.size, dtype=np.int64)  # trailing zeros of the six digits
    for t in range(1, 6):
        tz += r % 10**t == 0
    fixed = (e >= -4) & (e < 6)
    for ex in range(-4, 6):
        sel = np.flatnonzero(fixed & (e == ex))
        if not sel.size:
            continue
        d, z = digits[sel], tz[sel]
        if ex < 0:  # 0.000ddd
            lead = np.frombuffer(b"0." + b"0" * (-ex - 1), dtype=np.uint8)
            mat = np.hstack([np.broadcast_to(lead, (sel.size, lead.size)), d])
            keep = lead.size + 6 - z
        else:  # ddd.ddd, the point dropped with the fraction when it is all zeros
            point = np.full((sel.size, 1), ord("."), dtype=np.uint8)
            mat = np.hstack([d[:, : ex + 1], point, d[:, ex + 1 :]])
            frac = np.maximum(5 - ex - z, 0)
            keep = ex + 1 + np.where(frac > 0, frac + 1, 0)
        mat[np.arange(mat.shape[1])[None, :] >= keep[:, None]] = 0
        out[idx[sel]] = _ascii_rows(mat)
    sel = np.flatnonzero(~fixed)
    if sel.size:  # d.ddddde+XX (at least two exponent digits)
        d, z, ee = digits[sel], tz[sel], e[sel]
        point = np.full((sel.size, 1), ord("."), dtype=np.uint8)
        mat = np.hstack([d[:, :1], point, d[:, 1:]])
        frac = 5 - z
        keep = 1 + np.where(frac > 0, frac + 1, 0)
        mat[np.arange(7)[None, :] >= keep[:, None]] = 0
        mag = np.abs(ee)
        exp = np.zeros((sel.size, 3), dtype=np.uint8)
        wide = mag >= 100
        exp[:, 0] = np.where(wide, mag // 100 + 48, (mag // 10) % 10 + 48)
        exp[:, 1] = np.where(wide, (mag // 10) % 10 + 48, mag % 10 + 48)
        exp[:, 2] = np.where(wide, mag % 10 + 48, 0)
        sign = np.where(ee < 0, b"e-", b"e+")
        out[idx[sel]] = np.strings.add(np.strings.add(_ascii_rows(mat), sign), _ascii_rows(exp))
    neg = idx[np.signbit(x[idx])]
    if neg.size:
        out[neg] = np.strings.add(b"-", out[neg])
    slow = np.ones(n, dtype=bool)
    slow[idx] = False
    na_bytes = None if na is None else na.encode("ascii")
    for i in np.flatnonzero(slow).tolist():
        v = float(x[i])
        out[i] = na_bytes if na_bytes is not None and not np.isfinite(v) else format_g6(v).encode()
    return out


def _check_len(variants: VariantColumns, *arrays: npt.NDArray[np.generic]) -> None:
    for a in arrays:
        if a.shape[0] != len(variants):
            raise ValueError(
                f"result has {a.shape[0]} variants but variant columns have {len(variants)}"
            )


def _mark_withheld(
    lines: Iterable[str], withheld: npt.NDArray[np.bool_] | None, lead: int
) -> Iterable[str]:
    """``lines`` with every field after the first ``lead`` set to NA on withheld rows."""
    if withheld is None or not withheld.any():
        yield from lines
        return
    for line, hidden in zip(lines, withheld.tolist(), strict=True):
        if hidden:
            fields = line.split("\t")
            line = "\t".join(fields[:lead] + ["NA"] * (len(fields) - lead))
        yield line


def _write_atomic(path: Path, header: str, lines: Iterable[str]) -> None:
    """Write ``header`` and ``lines`` to ``path`` atomically (see :mod:`.atomic`).

    The whole table is built before anything touches the disk, so a
    formatting error leaves no file at all.
    """
    text = "\n".join([header, *lines]) + "\n"
    atomic_write_text(Path(path), text)


def write_afreq(
    path: Path,
    variants: VariantColumns,
    freq: FreqResult,
    withheld: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Write a ``plink2 --freq`` ``.afreq`` table."""
    _check_len(variants, freq.alt_freqs, freq.obs_ct)
    rows = zip(
        variants.chrom, variants.id, variants.ref, variants.alt,
        freq.alt_freqs.tolist(), freq.obs_ct.tolist(), strict=True,
    )  # fmt: skip
    _write_atomic(
        path,
        AFREQ_HEADER,
        _mark_withheld(
            (f"{c}\t{i}\t{r}\t{a}\t{format_g6(f)}\t{o}" for c, i, r, a, f, o in rows),
            withheld,
            4,
        ),
    )


def write_vmiss(
    path: Path,
    variants: VariantColumns,
    miss: MissingnessResult,
    withheld: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Write a ``plink2 --missing`` variant report (``.vmiss``)."""
    _check_len(variants, miss.missing_ct, miss.obs_ct, miss.f_miss)
    rows = zip(
        variants.chrom, variants.id, miss.missing_ct.tolist(), miss.obs_ct.tolist(),
        miss.f_miss.tolist(), strict=True,
    )  # fmt: skip
    _write_atomic(
        path,
        VMISS_HEADER,
        _mark_withheld(
            (f"{c}\t{i}\t{m}\t{o}\t{format_g6(f)}" for c, i, m, o, f in rows), withheld, 2
        ),
    )


def write_gcount(
    path: Path,
    variants: VariantColumns,
    counts: GenoCountsResult,
    withheld: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Write a ``plink2 --geno-counts`` table (``.gcount``); HAP_* are 0 on autosomes."""
    _check_len(variants, counts.hom_ref_ct, counts.het_ref_alt_ct, counts.two_alt_geno_ct)
    rows = zip(
        variants.chrom, variants.id, variants.ref, variants.alt,
        counts.hom_ref_ct.tolist(), counts.het_ref_alt_ct.tolist(),
        counts.two_alt_geno_ct.tolist(), counts.missing_ct.tolist(), strict=True,
    )  # fmt: skip
    _write_atomic(
        path,
        GCOUNT_HEADER,
        _mark_withheld(
            (
                f"{c}\t{i}\t{r}\t{a}\t{h0}\t{h1}\t{h2}\t0\t0\t{m}"
                for c, i, r, a, h0, h1, h2, m in rows
            ),
            withheld,
            4,
        ),
    )


def write_hardy(
    path: Path,
    variants: VariantColumns,
    result: HardyResult,
    withheld: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Write a ``plink2 --hardy`` table (``.hardy``; last column MIDP with ``midp``).

    A1 is REF and AX is ALT, as PLINK 2 prints biallelic variants.
    """
    _check_len(variants, result.hom_a1_ct, result.p)
    rows = zip(
        variants.chrom, variants.id, variants.ref, variants.alt,
        result.hom_a1_ct.tolist(), result.het_a1_ct.tolist(), result.two_ax_ct.tolist(),
        result.o_het_a1.tolist(), result.e_het_a1.tolist(), result.p.tolist(), strict=True,
    )  # fmt: skip
    header = HARDY_MIDP_HEADER if result.midp else HARDY_HEADER
    _write_atomic(
        path,
        header,
        _mark_withheld(
            (
                f"{c}\t{i}\t{r}\t{a}\t{h0}\t{h1}\t{h2}\t{format_g6(o)}\t{format_g6(e)}\t{format_g6(p)}"
                for c, i, r, a, h0, h1, h2, o, e, p in rows
            ),
            withheld,
            4,
        ),
    )
