"""Variant harmonization: make every site's variants line up before any analysis.

Sites send their variant tables (chromosome, position, ID, REF, ALT: no
sample data). A variant is identified by chromosome (a leading ``chr`` is
ignored), position and its unordered allele pair. The first site's order and
naming are the study's reference. For each site the result says which local
variant answers each study variant (``index``) and whether its alleles are
swapped relative to the reference (``flip``: the site then counts the other
allele, turning genotype ``g`` into ``2 - g``).

The two ALTs of a multi-allelic VCF record, split at the site
(:mod:`genofed.site_agent.io.vcf`), are two variants like any (their shared
ID does not matter). A swap is refused at a position where that site holds
another ALT with the same REF, since ``2 - g`` would count it too.

Anything else that differs — a variant missing at a site, an extra one, the
same position with other alleles, a duplicated variant — is counted per site.
The study stops on any such difference unless it allows running on the
intersection of all sites' variants.

Only autosomes are supported for now: plink2 treats chrX, chrY and MT as
haploid in males, which these analyses do not model, so a study holding such
variants stops with an error that says how to exclude them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genofed.common.chromosomes import bare_chrom
from genofed.common.errors import HarmonizationError

#: Chromosome names treated as autosomes (after dropping a ``chr`` prefix).
AUTOSOMES = frozenset(str(i) for i in range(1, 23))


@dataclass(frozen=True)
class VariantTable:
    """One site's variants, in its file order."""

    chrom: np.ndarray
    pos: np.ndarray
    id: np.ndarray
    ref: np.ndarray
    alt: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)

    def take(self, index: np.ndarray) -> VariantTable:
        return VariantTable(
            self.chrom[index], self.pos[index], self.id[index], self.ref[index], self.alt[index]
        )


@dataclass(frozen=True)
class SitePlan:
    """How one site answers the study's variants."""

    index: np.ndarray  # int64, local variant index for each study variant
    flip: np.ndarray  # bool, True where the site's REF/ALT are swapped


@dataclass(frozen=True)
class SiteMatchReport:
    """Per-site counts of how its variants matched the reference."""

    site: str
    n_variants: int
    n_matched: int
    n_swapped: int
    n_missing: int  # reference variants the site lacks
    n_extra: int  # site variants the reference lacks
    n_allele_mismatch: int  # same chromosome and position, other alleles
    n_duplicates: int

    @property
    def clean(self) -> bool:
        return self.n_missing == self.n_extra == self.n_allele_mismatch == self.n_duplicates == 0


@dataclass(frozen=True)
class Harmonization:
    variants: VariantTable  # the study's variants, reference order and naming
    plans: tuple[SitePlan, ...]
    reports: tuple[SiteMatchReport, ...]


def check_builds(sites: Sequence[str], builds: Sequence[str]) -> tuple[str, str | None]:
    """The study's genome build and a warning, from each site's build ("unknown" if not known).

    Raises HarmonizationError naming each site and its build when two known builds differ.
    The warning (else None) names the sites whose build is unknown when another's is known.
    """
    known = {b for b in builds if b != "unknown"}
    listed = ", ".join(f"{s}: {b}" for s, b in zip(sites, builds, strict=True))
    if len(known) > 1:
        raise HarmonizationError(
            f"the sites' genotypes are on different genome builds ({listed}); positions on "
            "different builds do not match\n  fix: lift the sites not on the study's build over "
            "to it (e.g. CrossMap vcf or UCSC liftOver with a chain file), then set build in "
            "each site.toml's [data] (genofed-site init --build)"
        )
    if not known:
        return "unknown", None
    build = known.pop()
    unknown = [s for s, b in zip(sites, builds, strict=True) if b == "unknown"]
    if not unknown:
        return build, None
    return build, (
        f"genome build {build} is declared by some sites but unknown at {', '.join(unknown)}: "
        'their site IT should set build = "GRCh37" or "GRCh38" under [data] in site.toml'
    )


def _keys(table: VariantTable) -> tuple[list[tuple[str, int, str, str]], list[tuple[str, int]]]:
    """Each variant's key ``(chrom, pos, lo, hi)`` (sorted alleles) and its ``(chrom, pos)``."""
    raw = np.asarray(table.chrom).astype(str).tolist()
    norm = {c: bare_chrom(c) for c in set(raw)}
    chroms = [norm[c] for c in raw]
    pos = np.asarray(table.pos).astype(np.int64).tolist()
    ref, alt = np.asarray(table.ref).astype(str), np.asarray(table.alt).astype(str)
    first = ref <= alt  # code-point order, as sorted() compares str
    lo = np.where(first, ref, alt).tolist()
    hi = np.where(first, alt, ref).tolist()
    return list(zip(chroms, pos, lo, hi, strict=True)), list(zip(chroms, pos, strict=True))


def harmonize(
    sites: Sequence[str], tables: Sequence[VariantTable], *, allow_intersection: bool
) -> Harmonization:
    """Match every site's variants to the first site's; raise on differences.

    Raises HarmonizationError naming each site's counts (and one example)
    when the tables differ and ``allow_intersection`` is False, when a
    non-autosomal variant is present, or when nothing is left in common.
    """
    if not tables:
        raise HarmonizationError("no sites to harmonize")
    ref_keys, ref_chrom_pos = _keys(tables[0])
    ref_pos = dict(zip(ref_keys, range(len(ref_keys)), strict=True))  # last index of each key
    ref_positions = set(ref_chrom_pos)
    lookups: list[dict[tuple[str, int, str, str], int]] = []
    reports: list[SiteMatchReport] = []
    examples: list[str] = []
    for site, table in zip(sites, tables, strict=True):
        keys, positions = (ref_keys, ref_chrom_pos) if table is tables[0] else _keys(table)
        # the last index of each key, in first-seen order
        lookup: dict[tuple[str, int, str, str], int] = dict(
            zip(keys, range(len(keys)), strict=True)
        )
        duplicates = len(keys) - len(lookup)
        matched = len(lookup.keys() & ref_pos.keys())
        extra_keys = (
            [i for k, i in lookup.items() if k not in ref_pos] if matched < len(lookup) else []
        )
        mismatch = sum(1 for i in extra_keys if positions[i] in ref_positions)
        report = SiteMatchReport(
            site=site,
            n_variants=len(table),
            n_matched=matched,
            n_swapped=0,
            n_missing=len(ref_pos) - matched,
            n_extra=len(extra_keys),
            n_allele_mismatch=mismatch,
            n_duplicates=duplicates,
        )
        if not report.clean and len(examples) < 3:
            examples.append(_example(site, tables[0], table, ref_keys, lookup, extra_keys, keys))
        reports.append(report)
        lookups.append(lookup)
    if any(r.n_duplicates for r in reports):
        raise HarmonizationError(
            _describe(
                reports,
                examples,
                "duplicated variants",
                "remove the duplicates at each site that has them, e.g. plink2 --bfile X "
                "--rm-dup force-first --make-bed --out X-dedup, then point site.toml at it",
            )
        )
    if not all(r.clean for r in reports) and not allow_intersection:
        raise HarmonizationError(_describe(reports, examples, "sites hold different variants"))
    if all(r.n_missing == 0 for r in reports):  # every site has every reference key
        common = list(range(len(ref_keys)))
    else:
        common = [i for i, k in enumerate(ref_keys) if all(k in lk for lk in lookups)]
    if not common:
        raise HarmonizationError(
            "the sites have no variant in common\n  fix: check that every site holds the same "
            "genome build and variant set (the .bim files' chromosome, position and alleles)"
        )
    study_variants = tables[0].take(np.asarray(common, dtype=np.int64))
    _check_autosomes(study_variants, sites)
    plans: list[SitePlan] = []
    final_reports: list[SiteMatchReport] = []
    common_keys = ref_keys if len(common) == len(ref_keys) else [ref_keys[i] for i in common]
    for table, lookup, report in zip(tables, lookups, reports, strict=True):
        index = np.fromiter(map(lookup.__getitem__, common_keys), dtype=np.int64, count=len(common))
        flip = np.asarray(table.ref[index] != study_variants.ref)
        if flip.any():
            _check_flips(report.site, table, index[flip], study_variants.ref[flip])
        plans.append(SitePlan(index=index, flip=flip))
        final_reports.append(SiteMatchReport(**{**report.__dict__, "n_swapped": int(flip.sum())}))
    return Harmonization(study_variants, tuple(plans), tuple(final_reports))


def _check_flips(
    site: str, table: VariantTable, flipped: np.ndarray, study_ref: np.ndarray
) -> None:
    """Refuse a swap at a position where the site holds more than two alleles.

    A swapped variant is counted as ``2 - g``: the copies of every allele but
    the site's ALT. At a position where the site holds another variant with
    the same REF (a multi-allelic record split per ALT, or the records
    ``bcftools norm -m-`` wrote), that also counts the other ALT's copies, not
    the study's ALT only, so the counts would be silently wrong.
    """
    at = np.isin(table.pos, table.pos[flipped])
    chrom, pos = np.asarray(table.chrom).astype(str), np.asarray(table.pos)
    ref = np.asarray(table.ref).astype(str)
    seen: dict[tuple[str, int, str], int] = {}
    for i in np.flatnonzero(at).tolist():
        key = (bare_chrom(chrom[i]), int(pos[i]), ref[i])
        seen[key] = seen.get(key, 0) + 1
    for j, i in enumerate(flipped.tolist()):
        if seen[(bare_chrom(chrom[i]), int(pos[i]), ref[i])] > 1:
            raise HarmonizationError(
                f"{site} holds {table.id[i]} ({chrom[i]}:{pos[i]} {ref[i]}/{table.alt[i]}) with "
                f"REF {ref[i]} where the first site's REF is {study_ref[j]}, and another ALT at "
                "that position (a multi-allelic record): its alleles cannot be swapped to the "
                "first site's, since the other ALT would be counted with them\n  fix: give "
                "every site its genotypes with REF from the same reference genome (bcftools "
                "norm -f reference.fa -c s fixes a swapped REF), or remove that position "
                "at the site"
            )


def _example(
    site: str,
    ref: VariantTable,
    table: VariantTable,
    ref_keys: list[tuple[str, int, str, str]],
    lookup: dict[tuple[str, int, str, str], int],
    extra: list[int],
    keys: list[tuple[str, int, str, str]],
) -> str:
    if len(lookup) < len(keys):  # duplicates: name the first one
        first: dict[tuple[str, int, str, str], int] = {}
        for j, key in enumerate(keys):
            if key in first:
                i = first[key]
                where = f"{table.chrom[j]}:{table.pos[j]} {table.ref[j]}/{table.alt[j]}"
                return (
                    f"{site} lists {where} twice ({table.id[i]} and {table.id[j]}: "
                    f"variants {i + 1} and {j + 1} of its .bim)"
                )
            first[key] = j
    for i, key in enumerate(ref_keys):
        if key not in lookup:
            return (
                f"{site} lacks {ref.id[i]} ({ref.chrom[i]}:{ref.pos[i]} {ref.ref[i]}/{ref.alt[i]})"
            )
    if not extra:
        return f"{site} lists some variants more than once"
    i = extra[0]
    where = f"{table.chrom[i]}:{table.pos[i]} {table.ref[i]}/{table.alt[i]}"
    return f"{site} has {table.id[i]} ({where}) that the first site lacks"


def _describe(
    reports: list[SiteMatchReport], examples: list[str], what: str, fix: str | None = None
) -> str:
    lines = [f"variant harmonization failed: {what}"]
    for r in reports:
        lines.append(
            f"  {r.site}: {r.n_variants} variants, {r.n_matched} match the first site, "
            f"{r.n_missing} missing, {r.n_extra} extra, {r.n_allele_mismatch} with other alleles, "
            f"{r.n_duplicates} duplicated"
        )
    lines.extend(f"  e.g. {e}" for e in examples)
    if fix is not None:
        lines.append(f"  fix: {fix}")
        return "\n".join(lines)
    lines.append(
        '  fix: give every site the same variant set, or set on_variant_mismatch = "intersect" '
        "in [study] to run on the variants all sites share (duplicates must always be removed)"
    )
    return "\n".join(lines)


#: plink's codes for the sex chromosomes, their pseudo-autosomal parts and the mitochondrion.
SEX_AND_MT = frozenset({"X", "Y", "XY", "MT", "M", "23", "24", "25", "26", "PAR1", "PAR2"})


def _check_autosomes(variants: VariantTable, sites: Sequence[str]) -> None:
    chroms = np.asarray(variants.chrom).astype(str).tolist()
    other = {c for c in set(chroms) if bare_chrom(c) not in AUTOSOMES}
    if not other:
        return
    held = f"held by {', '.join(sites)}" if len(sites) > 1 else f"at {sites[0]}"
    unknown = sorted(c for c in other if bare_chrom(c).upper() not in SEX_AND_MT)
    fix = (
        "  fix: keep chromosomes 1-22 only at each site (plink2 --bfile X --allow-extra-chr "
        "--autosome --make-bed --out X-autosomes), then point site.toml at the new fileset"
    )
    if unknown:
        i = chroms.index(unknown[0])
        raise HarmonizationError(
            f"{sum(c in set(unknown) for c in chroms)} study variants ({held}) are on "
            f"chromosome codes GenoFed does not know: {', '.join(map(repr, unknown[:5]))} (e.g. "
            f"{variants.id[i]}, column 1 of each site's .bim); GenoFed reads chromosomes 1-22, "
            "with or without a chr prefix\n" + fix
        )
    bad = [i for i, c in enumerate(chroms) if c in other]
    i = bad[0]
    raise HarmonizationError(
        f"{len(bad)} study variants ({held}) are not on autosomes (e.g. {variants.id[i]} on "
        f"chromosome {variants.chrom[i]}); sex-chromosome and mitochondrial variants are "
        "not supported yet\n" + fix
    )


__all__ = [
    "AUTOSOMES",
    "Harmonization",
    "SiteMatchReport",
    "SitePlan",
    "VariantTable",
    "check_builds",
    "harmonize",
]
