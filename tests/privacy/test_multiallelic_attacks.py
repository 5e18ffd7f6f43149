"""A rare ALT of a multi-allelic VCF record, used to single out its carrier.

A record of the synthetic cohort that is common at every site (``REF/ALT``)
is given a second ALT in every site's VCF, carried (``0/2``) by one person
at site-a; the site splits it into ``REF/ALT`` and ``REF/ALT2``
(:mod:`genofed.site_agent.io.vcf`). A hostile analyst runs a GWAS: without
small-cell suppression the ``REF/ALT2`` variant's glm sums are that
person's own design row (intercept, AGE, QPHENO), so the attack is real.
With the realistic policy of :mod:`tests.privacy.test_attacks`
(``min_cell_count = 10``, with and without the sample-set guard), the split
variant is withheld like any single-carrier variant, whatever its record's
common ALT is, and the common ALT's variant still leaves.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pysam
import pytest

from genofed.site_agent.io.vcf import VcfFile
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import SynthSummary, write_cohorts
from tests.privacy.test_attacks import GLM_AGE, MIN_CELL, Recording, policy, run, study, table


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    root = tmp_path_factory.mktemp("multi-attack")
    return write_cohorts(
        root / "c", sites=3, samples=300, variants=300, seed=7, missing_rate=0.0,
        genotype_format="vcf",
    )  # fmt: skip


def _balanced_record(sites: tuple[Path, ...]) -> int:
    """The first record whose genotype classes hold 0 or MIN_CELL + 2 people or more at every
    site, two classes at least (its common ALT passes the small-cell rule with a carrier less)."""
    ok = True
    for site in sites:
        with VcfFile(site / "data" / "genotypes.vcf.gz") as reader:
            calls = np.concatenate([block for _, block in reader.iter_dosages()])
        c = np.stack([(calls == g).sum(axis=1) for g in (0, 1, 2)], axis=1)
        ok &= ((c == 0) | (c >= MIN_CELL + 2)).all(axis=1) & ((c > 0).sum(axis=1) >= 2)
    return int(np.flatnonzero(ok)[0])


def _add_rare_alt(vcf: Path, record: int, carrier: str | None) -> None:
    """Give ``record`` a second ALT, carried (0/2) by ``carrier`` only."""
    lines = gzip.decompress(vcf.read_bytes()).decode().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("#CHROM"))
    names = lines[header].split("\t")
    fields = lines[header + 1 + record].split("\t")
    ref, alt = fields[3], fields[4]
    fields[4] = f"{alt},{next(b for b in 'ACGT' if b not in (ref, alt))}"
    if carrier is not None:
        fields[names.index(carrier)] = "0/2"
    lines[header + 1 + record] = "\t".join(fields)
    plain = vcf.with_suffix("")  # genotypes.vcf
    plain.write_text("\n".join(lines) + "\n")
    pysam.tabix_compress(str(plain), str(vcf), force=True)
    plain.unlink()


def _federation(cohort: SynthSummary, root: Path, policy_text: str) -> tuple[list[Path], str, int]:
    """The cohort's sites with ``policy_text`` and the rare ALT: sites, carrier, record."""
    record = _balanced_record(cohort.sites)
    sites = []
    for site in cohort.sites:
        target = root / site.name
        shutil.copytree(site, target)
        (target / POLICY_FILE).write_text(policy_text)
        sites.append(target)
    header, rows = table(sites[0] / "data" / "pheno.tsv")
    carrier = next(r[1] for r in rows if r[header.index("QPHENO")] not in ("NA", "-9"))
    for k, site in enumerate(sites):
        _add_rare_alt(site / "data" / "genotypes.vcf.gz", record, carrier if k == 0 else None)
    return sites, carrier, record


def _carrier_row(site: Path, carrier: str) -> list[float]:
    """``[1, AGE, QPHENO]`` of ``carrier``: the glm design row z that gz sums."""
    p_header, p_rows = table(site / "data" / "pheno.tsv")
    c_header, c_rows = table(site / "data" / "covar.tsv")
    y = next(float(r[p_header.index("QPHENO")]) for r in p_rows if r[1] == carrier)
    age = next(float(r[c_header.index("AGE")]) for r in c_rows if r[1] == carrier)
    return [1.0, age, y]


def _glm_stats(sites: list[Path], out: Path) -> tuple[np.ndarray, np.ndarray]:
    transport = Recording(sites)
    run(study("gwas", GLM_AGE), transport, out)
    (stats,) = transport.arrays("site-a", "glm_stats")
    withheld = np.unpackbits(stats["withheld"])[: len(stats["gg"])].astype(bool)
    return stats["gz"], withheld


def test_split_rare_alt__without_suppression_its_glm_sums_are_the_carriers_row(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    off = policy(False).replace(f"min_cell_count = {MIN_CELL}", "min_cell_count = 0")
    sites, carrier, record = _federation(cohort, tmp_path / "sites", off)
    with VcfFile(sites[0] / "data" / "genotypes.vcf.gz") as reader:
        assert (reader.split_records, reader.n_variants) == (1, 301)
    gz, withheld = _glm_stats(sites, tmp_path / "r")
    rare = record + 1  # the record's second ALT, the variant after its first
    assert not withheld[rare]
    np.testing.assert_allclose(gz[rare], _carrier_row(sites[0], carrier))  # the attack works


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_split_rare_alt__its_single_carrier_is_withheld_and_the_common_alt_still_leaves(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    sites, _, record = _federation(cohort, tmp_path / "sites", policy(guard))
    gz, withheld = _glm_stats(sites, tmp_path / "r")
    rare = record + 1
    assert withheld[rare] and not gz[rare].any()
    assert not withheld[record] and gz[record].any()
