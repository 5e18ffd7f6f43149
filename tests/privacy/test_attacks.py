"""A hostile analyst's attacks on a federation with a realistic policy, run for real.

Every site here has the policy a careful privacy officer would write
(``min_cell_count = 10``, ``min_cohort_size = 50``, signed studies from one
trusted analyst, auto-approved, no demo policy). Each attack is a sequence
of studies that only uses documented features; the analyst (who here also
reads every reply the coordinator receives) then subtracts what came back.
Each test first shows the attack working with the sample-set guard turned
off (``audit_sample_sets = false``), so that the attack is real, then shows
that with the policy's default it is refused (``DISCLOSURE_RISK``, audited)
or that the variant it needs is withheld, and that nothing it needs left.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from bed_reader import open_bed, to_bed

from genofed.common.errors import SiteFailure
from genofed.common.messages import AuditKind
from genofed.common.signing import public_key_text, sign_study
from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.privacy.approvals import approve
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.site_agent.snapshot import snapshot_status
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport
from tests.privacy_cases import ANALYST

MIN_CELL = 10


def policy(guard: bool) -> str:
    return f"""
[policy]
version = 1
allowed_analyses = ["variants", "freq", "glm", "km", "cox", "prs", "pca", "train", "pgx"]
allowed_release_modes = ["plain"]
min_cohort_size = 50
min_cell_count = {MIN_CELL}
audit_sample_sets = {"true" if guard else "false"}
guard_refusals_before_review = 1

[[policy.trusted_analysts]]
name = "alice"
public_key = "{public_key_text(ANALYST.public_key())}"

[[policy.auto_approve]]
name = "everything alice signs"
analysts = ["alice"]
"""


class Recording(InProcessTransport):
    """The coordinator's view: every reply's arrays, by site name and request kind."""

    def __init__(self, site_dirs: Sequence[Path]) -> None:
        super().__init__(list(site_dirs))
        self.names = [p.name for p in site_dirs]
        self.got: list[tuple[str, str, Mapping[str, np.ndarray]]] = []

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        got = super().exchange(outgoing, timeout=timeout)
        for node, o in outgoing.items():
            self.got.append((self.site_dirs[node].name, o.request.kind, got[node].arrays))
        return got

    def arrays(self, site: str, kind: str) -> list[Mapping[str, np.ndarray]]:
        return [a for s, k, a in self.got if s == site and k == kind and a]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    root = tmp_path_factory.mktemp("attacks")
    return write_cohorts(root / "c", sites=3, samples=300, variants=60, seed=7, missing_rate=0.0)


def federation(cohort: SynthSummary, root: Path, *, guard: bool) -> list[Path]:
    sites = []
    for site in cohort.sites:
        target = root / site.name
        shutil.copytree(site, target)
        (target / POLICY_FILE).write_text(policy(guard))
        sites.append(target)
    return sites


def study(name: str, *analyses: dict[str, object]) -> Study:
    return study_from_mapping(
        {"study": {"name": name}, "analysis": list(analyses)}, path=Path("<attack>")
    )


def run(s: Study, transport: Recording, out: Path) -> None:
    run_study(s, transport, out, engine="in-process", signature=sign_study(s, ANALYST))


def table(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    return lines[0], lines[1:]


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")


def refusals(site: Path) -> list[str]:
    entries = [audit_entry_from_bytes(leaf) for leaf in read_site_log(site).leaves]
    return [e.reason for e in entries if e.kind == AuditKind.REFUSAL]


def add_covariate_missing_for(site: Path, person: int | None) -> tuple[str, float]:
    """Give the covariate table a BMI column, missing for one person; return their IID, QPHENO."""
    header, rows = table(site / "data" / "covar.tsv")
    for i, r in enumerate(rows):
        r.append("NA" if i == person else f"{20 + i % 13}.5")
    write_table(site / "data" / "covar.tsv", [*header, "BMI"], rows)
    if person is None:
        return "", 0.0
    p_header, p_rows = table(site / "data" / "pheno.tsv")
    iid = rows[person][1]
    value = next(r[p_header.index("QPHENO")] for r in p_rows if r[1] == iid)
    return iid, float(value)


def sum_y(zz: np.ndarray, k: int) -> float:
    """Sum of y over the analysis samples: entry (0, k + 1) of the upper triangle of z z^T."""
    return float(zz[k + 1])


GLM_AGE = {"kind": "glm", "id": "g", "phenotype": "QPHENO", "covariates": ["AGE"]}
GLM_AGE_BMI = {"kind": "glm", "id": "g", "phenotype": "QPHENO", "covariates": ["AGE", "BMI"]}


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_covariate_missingness__two_glm_cohorts_one_person_apart(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    _, y = add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    transport = Recording(sites)
    run(study("age", GLM_AGE), transport, tmp_path / "a")
    if not guard:
        run(study("age-bmi", GLM_AGE_BMI), transport, tmp_path / "b")
        first, second = transport.arrays("site-a", "glm_stats")
        recovered = sum_y(first["zz"], 1) - sum_y(second["zz"], 2)
        assert recovered == pytest.approx(y, abs=1e-9)  # the attack works
        return
    with pytest.raises(SiteFailure) as info:
        run(study("age-bmi", GLM_AGE_BMI), transport, tmp_path / "b")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert "differs from a released set" in str(info.value) and "by 1 person" in str(info.value)
    assert len(transport.arrays("site-a", "glm_stats")) == 1  # the second never left
    assert refusals(sites[0])[-1].startswith("DISCLOSURE_RISK: ")
    assert not (tmp_path / "b").exists()
    # the probing analyst's next study is no longer auto-approved at that site
    later = study("later", {**GLM_AGE, "covariates": ["SEX"]})
    with pytest.raises(SiteFailure) as info:
        run(later, transport, tmp_path / "c")
    assert info.value.site == "site-a" and info.value.reason_code == "PENDING_APPROVAL"
    assert "auto-approval of alice's studies is suspended" in str(info.value)
    approve(sites[0], later.sha256, by="officer")
    run(later, transport, tmp_path / "c")  # the officer decides; the guard still applies


def test_covariate_missingness__the_larger_cohort_second_is_served_over_the_first(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """AGE+BMI first, then AGE alone (one person more): the second glm sums over the first's set."""
    sites = federation(cohort, tmp_path / "sites", guard=True)
    add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    transport = Recording(sites)
    run(study("age-bmi", GLM_AGE_BMI), transport, tmp_path / "a")
    run(study("age", GLM_AGE), transport, tmp_path / "b")
    first, second = transport.arrays("site-a", "glm_stats")
    assert second["zz"][0] == first["zz"][0]  # the same samples
    assert sum_y(second["zz"], 1) - sum_y(first["zz"], 2) == 0.0  # the attack: nothing left
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "b" / "provenance.json").read_text())["summary"]
    assert summary["guard_left_out"] == [{"site": "site-a", "analysis": "g", "samples": 1}]


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_outside_counts__a_second_phenotype_does_not_give_away_the_few_the_first_left_out(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """QPHENO lacks three people, DISEASE those and ten more. glm_stats sends allele counts over the
    genotyped samples outside the analysis (plink2 picks A1 over everyone): DISEASE's sums
    and its outside counts add up to everyone's, and minus QPHENO's they are the three's
    genotypes. With the guard on the outside counts are left out and the GWAS runs."""
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    q, d = header.index("QPHENO"), header.index("DISEASE")
    for i, r in enumerate(rows):
        r[q] = "NA" if i in (2, 3, 4) else ("0.5" if r[q] in ("NA", "-9") else r[q])
        r[d] = "NA" if i in (2, 3, 4) or 10 <= i < 20 else ("1" if r[d] in ("NA", "-9") else r[d])
    write_table(pheno, header, rows)
    transport = Recording(sites)
    run(study("q", GLM_AGE), transport, tmp_path / "a")
    disease = {"kind": "glm", "id": "d", "phenotype": "DISEASE", "covariates": ["AGE"]}
    run(study("d", {**disease, "model": "linear"}), transport, tmp_path / "b")
    first, second = transport.arrays("site-a", "glm_stats")
    v = len(first["gz"])
    kept = ~(
        np.unpackbits(first["withheld"])[:v].astype(bool)
        | np.unpackbits(second["withheld"])[:v].astype(bool)
    )
    if not guard:
        everyone = second["gz"][:, 0] + second["other_counts"][:, 1]
        three = (everyone - first["gz"][:, 0])[kept]
        with open_bed(sites[0] / "data" / "genotypes.bed") as reader:
            g = reader.read(dtype="float64")[[2, 3, 4]].sum(axis=0)[kept]
        assert kept.any()
        assert np.array_equal(three, g) or np.array_equal(three, 6 - g)  # the attack works
        return
    assert second["other_counts"].shape[0] == 0  # left out: nothing adds up to everyone
    assert not refusals(sites[0])


def test_enrolment__a_rerun_after_one_patient_is_added_sees_the_frozen_snapshot(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    column = header.index("QPHENO")
    for r in rows:  # everyone measured but the eleven below (so no one else is outside)
        r[column] = "0.5" if r[column] in ("NA", "-9") else r[column]
    saved = [r[column] for r in rows]
    for r in rows[5:16]:
        r[column] = "NA"  # eleven patients not yet measured
    write_table(pheno, header, rows)
    transport = Recording(sites)
    s = study("age", GLM_AGE)
    run(s, transport, tmp_path / "a")
    rows[5][column] = saved[5]  # one measurement arrives
    write_table(pheno, header, rows)
    run(s, transport, tmp_path / "b")
    first, second = transport.arrays("site-a", "glm_stats")
    # answered from the frozen snapshot: the same sums, so nothing to subtract
    assert all(np.array_equal(first[k], second[k]) for k in first)
    status = snapshot_status(sites[0])
    assert status is not None and status.pending_people == 1
    # a site that drops its snapshot (e.g. to honour a withdrawal at once) is still
    # protected: the cohort one person larger is served over the earlier release's samples
    shutil.rmtree(sites[0] / "state" / "snapshots")
    run(s, transport, tmp_path / "c")
    third = transport.arrays("site-a", "glm_stats")[-1]
    assert all(np.array_equal(first[k], third[k]) for k in first)  # nothing to subtract
    summary = json.loads((tmp_path / "c" / "provenance.json").read_text())["summary"]
    assert summary["guard_left_out"] == [{"site": "site-a", "analysis": "g", "samples": 1}]
    # once min_cell_count people have changed, a new snapshot is taken and served
    for i in range(6, 16):
        rows[i][column] = saved[i]
    write_table(pheno, header, rows)
    before = snapshot_status(sites[0])
    run(s, transport, tmp_path / "d")
    after = snapshot_status(sites[0])
    assert before is not None and after is not None and after.id != before.id
    latest = transport.arrays("site-a", "glm_stats")[-1]
    assert latest["zz"][0] == first["zz"][0] + 11


def test_group_cut__a_km_group_of_one_oldest_patient_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)
    ages = []
    for site in sites:
        header, rows = table(site / "data" / "covar.tsv")
        ages += [float(r[header.index("AGE")]) for r in rows]
    oldest = sorted(ages)[-1]
    km = {
        "kind": "km",
        "id": "k",
        "time": "RFS_DAYS",
        "event": "RFS_EVENT",
        "grid": [365, 730],
        "group": "AGE",
        "cuts": [oldest - 0.5],
    }
    transport = Recording(sites)
    with pytest.raises(SiteFailure) as info:
        run(study("km-oldest", km), transport, tmp_path / "a")
    assert info.value.reason_code == "DISCLOSURE_RISK"
    assert "[SMALL_SET]" in str(info.value) or "[SMALL_DIFFERENCE]" in str(info.value)
    assert not transport.arrays(info.value.site, "km_counts")


def test_grouped_beside_ungrouped__a_complement_of_few_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """An ungrouped curve, then one grouped at a cut that leaves 1..9 people on one side."""
    sites = federation(cohort, tmp_path / "sites", guard=True)
    header, rows = table(sites[0] / "data" / "covar.tsv")
    ages = sorted(float(r[header.index("AGE")]) for r in rows)
    cut = ages[-3] - 0.5  # at site-a, three patients are at or above the cut
    base = {"kind": "km", "id": "k", "time": "RFS_DAYS", "event": "RFS_EVENT", "grid": [365, 730]}
    transport = Recording(sites)
    run(study("km", base), transport, tmp_path / "a")
    with pytest.raises(SiteFailure) as info:
        run(study("km-cut", {**base, "group": "AGE", "cuts": [cut]}), transport, tmp_path / "b")
    assert info.value.reason_code == "DISCLOSURE_RISK"


def test_survival_after_the_gwas__a_cohort_a_few_people_larger_is_served_over_the_gwas_set(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """km and cox over everyone with a follow-up, after a GWAS that lacks three of them.

    Without the guard's alignment the site would have to refuse both (their
    sums differ from the GWAS's by the three); it serves them over the GWAS's
    samples instead and says how many it left out. The attacker's difference
    of two releases over one set is nothing.
    """
    sites = federation(cohort, tmp_path / "sites", guard=True)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    for r in rows[2:5]:
        r[header.index("QPHENO")] = "NA"
    write_table(pheno, header, rows)
    with_phenotype = sum(1 for r in rows if r[header.index("QPHENO")] not in ("NA", "-9"))
    transport = Recording(sites)
    run(study("age", GLM_AGE), transport, tmp_path / "gwas")
    km = {"kind": "km", "id": "k", "time": "RFS_DAYS", "event": "RFS_EVENT", "grid": [365, 730]}
    cox = {"kind": "cox", "id": "c", "time": "RFS_DAYS", "event": "RFS_EVENT"}
    cox["covariates"] = ["AGE"]
    run(study("survival", km, cox), transport, tmp_path / "s")
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "s" / "provenance.json").read_text())["summary"]
    left_out = {(m["site"], m["analysis"]): m["samples"] for m in summary["guard_left_out"]}
    genotyped = len(next((sites[0] / "data").glob("*.fam")).read_text().splitlines())
    assert left_out[("site-a", "k")] == left_out[("site-a", "c")] == genotyped - with_phenotype


def test_crossing_cohorts__a_second_gwas_is_served_over_its_intersection_with_the_first(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """A logistic GWAS whose cohort crosses a linear one's: 3 newcomers, 20 people fewer.

    Over its own cohort the second GWAS's genotype sums would isolate the 3
    patients who have DISEASE but not QPHENO (an atom of 3 that the two
    releases' per-variant missing calls could pick out). The site serves it
    over its intersection with the first GWAS's samples instead: a new set,
    checked like any other, 20 people from the first (the attacker's
    difference of the two releases sums 20 people, not 3).
    """
    sites = federation(cohort, tmp_path / "sites", guard=True)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    q, d = header.index("QPHENO"), header.index("DISEASE")
    for i, r in enumerate(rows):
        r[q] = "NA" if i in (2, 3, 4) else (r[q] if r[q] not in ("NA", "-9") else "0.5")
        r[d] = "NA" if 10 <= i < 30 else (r[d] if r[d] not in ("NA", "-9") else "1")
    write_table(pheno, header, rows)
    transport = Recording(sites)
    run(study("linear", GLM_AGE), transport, tmp_path / "lin")
    logistic = {"kind": "glm", "id": "d", "phenotype": "DISEASE", "covariates": ["AGE"]}
    run(study("logistic", logistic), transport, tmp_path / "log")
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "log" / "provenance.json").read_text())["summary"]
    left_out = {(m["site"], m["analysis"]): m["samples"] for m in summary["guard_left_out"]}
    assert left_out[("site-a", "d")] == 3
    first, second = transport.arrays("site-a", "glm_stats")
    assert first["zz"][0] - second["zz"][0] == 20  # they differ by 20 people, none of the 3


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """Sites of 500: enough carriers that a PCA keeps variants under min_cell_count = 10."""
    root = tmp_path_factory.mktemp("larger")
    return write_cohorts(root / "c", sites=3, samples=1500, variants=400, seed=7, missing_rate=0.0)


def test_pca_after_the_gwas__served_over_the_gwas_samples_and_its_pcs_serve_a_gwas(
    larger: SynthSummary, tmp_path: Path
) -> None:
    """A PCA over every genotyped sample after a GWAS that lacks three: served over the GWAS set.

    Its count round then equals the GWAS's genotype sums (nothing to subtract);
    the samples left out have no scores, so a GWAS on the PCs leaves them out too.
    """
    sites = federation(larger, tmp_path / "sites", guard=True)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    for i, r in enumerate(rows):  # exactly three genotyped patients lack the phenotype
        if i in (2, 3, 4):
            r[header.index("QPHENO")] = "NA"
        elif r[header.index("QPHENO")] in ("NA", "-9"):
            r[header.index("QPHENO")] = "0.5"
    write_table(pheno, header, rows)
    with_phenotype = sum(1 for r in rows if r[header.index("QPHENO")] not in ("NA", "-9"))
    transport = Recording(sites)
    run(study("qc", {"kind": "freq", "samples_with": ["QPHENO", "AGE"]}), transport, tmp_path / "q")
    run(study("age", GLM_AGE), transport, tmp_path / "gwas")
    pcs = {"kind": "glm", "id": "gp", "phenotype": "QPHENO", "covariates": ["AGE", "PC1", "PC2"]}
    run(study("pcs", {"kind": "pca", "id": "pca", "n_pcs": 2}, pcs), transport, tmp_path / "p")
    assert not refusals(sites[0])
    (counts,) = transport.arrays("site-a", "pca_counts")
    (qc,) = transport.arrays("site-a", "genotype_counts")
    assert int(counts["genotype_counts"][0].sum()) == with_phenotype
    # the same samples' genotype counts as the QC release (pca withholds small-cell variants)
    kept = ~counts["withheld"]
    assert np.array_equal(counts["genotype_counts"][kept], qc["genotype_counts"][kept])
    summary = json.loads((tmp_path / "p" / "provenance.json").read_text())["summary"]
    genotyped = len(next((sites[0] / "data").glob("*.fam")).read_text().splitlines())
    left_out = {(m["site"], m["analysis"]): m["samples"] for m in summary["guard_left_out"]}
    assert left_out[("site-a", "pca")] == genotyped - with_phenotype
    genotyped_all = sum(
        len(next((d / "data").glob("*.fam")).read_text().splitlines()) for d in sites
    )
    pca_left = sum(n for (_, analysis), n in left_out.items() if analysis == "pca")
    assert summary["pca"]["samples"] == genotyped_all - pca_left
    assert "gp" in summary


def _scoring_with(cohort: SynthSummary, path: Path, weights: Sequence[float]) -> Path:
    lines = cohort.scoring_file.read_text().splitlines()
    head = [line for line in lines if line.startswith("#")]
    columns = next(line for line in lines if not line.startswith("#"))
    data = [line.split("\t") for line in lines[len(head) + 1 :]][: len(weights)]
    w = columns.split("\t").index("effect_weight")
    for row, weight in zip(data, weights, strict=True):
        row[w] = repr(float(weight))
    path.write_text("\n".join([*head, columns, *("\t".join(r) for r in data)]) + "\n")
    return path


@pytest.mark.parametrize(
    "weights",
    [[1.0], [3.0**i for i in range(12)]],
    ids=["one row", "powers of 3"],
)
def test_crafted_scoring_file__refused_before_any_score_leaves(
    cohort: SynthSummary, tmp_path: Path, weights: list[float]
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)
    scoring = _scoring_with(cohort, tmp_path / "crafted.txt", weights)
    prs = {"kind": "prs", "id": "p", "scoring_file": str(scoring), "phenotype": "QPHENO"}
    transport = Recording(sites)
    with pytest.raises(SiteFailure) as info:
        run(study("prs", prs), transport, tmp_path / "a")
    assert info.value.reason_code == "DISCLOSURE_RISK"
    assert "min_score_rows" in str(info.value) or "max_weight_ratio" in str(info.value)
    assert not any(k.startswith("prs_") and k != "prs_match" for _, k, a in transport.got if a)


def _edit_genotypes(site: Path, edit: object) -> None:
    bed = site / "data" / "genotypes.bed"
    with open_bed(bed) as reader:
        values = reader.read(dtype="float32")
        iid, sid = reader.iid, reader.sid
        fam, bim = reader.fid, reader.chromosome
        properties = {
            "fid": fam,
            "iid": iid,
            "father": reader.father,
            "mother": reader.mother,
            "sex": reader.sex,
            "pheno": reader.pheno,
            "chromosome": bim,
            "sid": sid,
            "cm_position": reader.cm_position,
            "bp_position": reader.bp_position,
            "allele_1": reader.allele_1,
            "allele_2": reader.allele_2,
        }
    edit(values)  # type: ignore[operator]
    to_bed(bed, values, properties=properties)


def _glm_rows(path: Path) -> dict[str, list[str]]:
    header, rows = table(path)
    return {r[header.index("ID")]: r for r in rows} | {"#header": header}


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_single_carrier__glm_sums_of_one_carrier_are_withheld(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    carrier = 7

    def one_carrier(g: np.ndarray) -> None:
        g[:, 0] = 0.0
        g[carrier, 0] = 1.0

    _edit_genotypes(sites[0], one_carrier)
    transport = Recording(sites)
    run(study("age", GLM_AGE), transport, tmp_path / "a")
    (stats,) = transport.arrays("site-a", "glm_stats")
    withheld = np.unpackbits(stats["withheld"])[: len(stats["gg"])].astype(bool)
    # min_cell_count applies to glm's genotype classes with or without the set audit
    assert withheld[0] and stats["gz"][0].tolist() == [0.0] * stats["gz"].shape[1]
    assert not withheld[1:].all()


def test_missing_call_sets__two_variants_one_person_apart_leave_one_of_them(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)
    header, rows = table(sites[0] / "data" / "pheno.tsv")
    analysed = [i for i, r in enumerate(rows) if r[header.index("QPHENO")] not in ("NA", "-9")]
    first = analysed[:12]
    second = analysed[:13]

    def missing(g: np.ndarray) -> None:
        g[first, 10] = np.nan
        g[second, 11] = np.nan

    _edit_genotypes(sites[0], missing)
    transport = Recording(sites)
    run(study("age", GLM_AGE), transport, tmp_path / "a")
    (stats,) = transport.arrays("site-a", "glm_stats")
    withheld = np.unpackbits(stats["withheld"])[: len(stats["gg"])].astype(bool)
    has_missing = np.unpackbits(stats["miss_rows"])[: len(stats["gg"])].astype(bool)
    # the first set (12 people) may leave; the second, one person more, may not
    assert has_missing[10] and not withheld[10]
    assert withheld[11] and not has_missing[11]


def test_cli__the_covariate_attack_through_genofed_study_run_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """The same differencing as above, as the analyst would type it (Flower simulation)."""
    from typer.testing import CliRunner

    from genofed import cli
    from genofed.common.signing import write_keypair

    sites = federation(cohort, tmp_path / "sites", guard=True)
    add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    write_keypair(tmp_path / "alice", ANALYST)
    key = tmp_path / "alice"
    runner = CliRunner()
    codes = []
    for name, covariates in (("age", '["AGE"]'), ("age-bmi", '["AGE", "BMI"]')):
        plain = tmp_path / f"{name}.toml"
        plain.write_text(
            f'[study]\nname = "{name}"\n\n[[analysis]]\nkind = "glm"\nid = "g"\n'
            f'phenotype = "QPHENO"\ncovariates = {covariates}\n'
        )
        signed = runner.invoke(cli.app, ["study", "sign", str(plain), "--key", str(key)])
        assert signed.exit_code == 0, signed.output
        args = ["study", "run", str(tmp_path / f"{name}.signed.json"), "--simulation"]
        for site in sites:
            args += ["--site", str(site)]
        result = runner.invoke(cli.app, [*args, "--out", str(tmp_path / f"r-{name}")])
        codes.append((result.exit_code, result.output))
    assert codes[0][0] == 0, codes[0][1]
    assert codes[1][0] != 0 and "DISCLOSURE_RISK" in codes[1][1]
    assert "site-a" in codes[1][1] and not (tmp_path / "r-age-bmi").exists()


class AsksForWithheld(Recording):
    """A hostile coordinator: its Newton rounds ask site-a about a variant it withheld."""

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        changed = dict(outgoing)
        for node, o in outgoing.items():
            if o.request.kind == "glm_logistic" and self.site_dirs[node].name == "site-a":
                beta = o.inputs["beta"]
                changed[node] = Outgoing(
                    o.request,
                    {
                        **o.inputs,
                        "variant_index": np.array([0], dtype=np.int64),
                        "flip": np.array([False]),
                        "beta": np.zeros((1, beta.shape[1])),
                        "firth": np.array([False]),
                    },
                )
        return super().exchange(changed, timeout=timeout)


def test_newton_round__a_coordinator_asking_about_a_withheld_variant_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)

    def one_carrier(g: np.ndarray) -> None:
        g[:, 0] = 0.0
        g[7, 0] = 1.0

    def common(g: np.ndarray) -> None:  # a variant every site releases: Newton rounds run
        g[:, 1] = np.random.default_rng(3).binomial(2, 0.5, size=g.shape[0])

    for site in sites:
        _edit_genotypes(site, common)
    _edit_genotypes(sites[0], one_carrier)
    logistic = {"kind": "glm", "id": "d", "phenotype": "DISEASE", "covariates": ["AGE"]}
    transport = AsksForWithheld(sites)
    with pytest.raises(SiteFailure) as info:
        run(study("logit", logistic), transport, tmp_path / "a")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert "withheld from glm_stats" in str(info.value)
    assert not transport.arrays("site-a", "glm_logistic")


def test_prs__a_few_samples_without_the_phenotype_do_not_stop_the_score(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """Counts and score over one set: nothing to subtract, so the guard passes the study."""
    sites = federation(cohort, tmp_path / "sites", guard=True)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    for r in rows[2:4]:
        r[header.index("QPHENO")] = "NA"
    write_table(pheno, header, rows)
    prs = {
        "kind": "prs",
        "id": "p",
        "scoring_file": str(cohort.scoring_file),
        "phenotype": "QPHENO",
    }
    transport = Recording(sites)
    run(study("prs", prs), transport, tmp_path / "a")
    (match,) = transport.arrays("site-a", "prs_match")
    (moments,) = transport.arrays("site-a", "prs_moments")
    # the match round counted the score's own samples: called counts equal n
    n = int(moments["moments"][0])
    called = match["effect_counts"][:, 0]
    assert set(called[~match["effect_counts_withheld"] & (called > 0)].tolist()) == {n}


def test_qc_on_everyone_after_the_gwas__is_served_over_the_gwas_samples(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """QC over all genotyped samples and a GWAS differ by those without the phenotype.

    The site serves the QC over the GWAS's samples (an earlier release's set
    inside the one asked for, lacking fewer than min_cell_count of it): the
    two count releases are the same sums, so subtracting them gives nothing,
    and the analyst is told how many samples were left out.
    """
    sites = federation(cohort, tmp_path / "sites", guard=True)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    for r in rows[2:5]:
        r[header.index("QPHENO")] = "NA"  # three genotyped patients lack the phenotype
    write_table(pheno, header, rows)
    qc_all = study("qc-all", {"kind": "freq"})
    cohort_columns = ["QPHENO", "AGE"]
    qc_gwas = study("qc-gwas", {"kind": "freq", "samples_with": cohort_columns})
    transport = Recording(sites)
    run(qc_gwas, transport, tmp_path / "qc")
    run(study("age", GLM_AGE), transport, tmp_path / "gwas")  # same samples: passes
    run(qc_all, transport, tmp_path / "all")  # everyone: served over the GWAS's samples
    counted = [a for s, k, a in transport.got if s == "site-a" and k == "genotype_counts"]
    with_phenotype = sum(1 for r in rows if r[header.index("QPHENO")] not in ("NA", "-9"))
    assert int(counted[0]["genotype_counts"][0].sum()) == with_phenotype  # AGE: no NA
    # the attack: everyone's counts minus the GWAS samples' counts are the three's genotypes
    difference = counted[1]["genotype_counts"] - counted[0]["genotype_counts"]
    assert not difference.any()
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "all" / "provenance.json").read_text())["summary"]
    left_out = {m["site"]: m for m in summary["guard_left_out"]}
    genotyped = len(next((sites[0] / "data").glob("*.fam")).read_text().splitlines())
    assert left_out["site-a"] == {
        "site": "site-a",
        "analysis": "freq",
        "samples": genotyped - with_phenotype,  # the three, and any the cohort lacked already
    }


class ScoresWithheldRow(Recording):
    """A hostile coordinator: its score rounds also use the rows site-a withheld."""

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        changed = dict(outgoing)
        for node, o in outgoing.items():
            if o.request.kind == "prs_moments":
                (match,) = self.arrays("site-a", "prs_match")
                use = o.inputs["use_rows"] | match["effect_counts_withheld"]
                freq = np.where(use, 0.5, o.inputs["impute_freq"])
                changed[node] = Outgoing(
                    o.request, {**o.inputs, "use_rows": use, "impute_freq": freq}
                )
        return super().exchange(changed, timeout=timeout)


def test_prs_plan__a_coordinator_scoring_a_withheld_row_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)
    lines = cohort.scoring_file.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 1
    rsid = lines[first].split("\t")[0]
    ids = [
        line.split("\t")[1]
        for line in (sites[0] / "data" / "genotypes.bim").read_text().splitlines()
    ]
    column = ids.index(rsid)

    def one_carrier(g: np.ndarray) -> None:
        g[:, column] = 0.0
        g[7, column] = 1.0

    _edit_genotypes(sites[0], one_carrier)
    prs = {
        "kind": "prs",
        "id": "p",
        "scoring_file": str(cohort.scoring_file),
        "phenotype": "QPHENO",
    }
    transport = ScoresWithheldRow(sites)
    with pytest.raises(SiteFailure) as info:
        run(study("prs", prs), transport, tmp_path / "a")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert "withheld for small allele counts" in str(info.value)


def add_constant_covariate_missing_for(site: Path, people: Sequence[int]) -> list[float]:
    """Give the covariate table an X column, 1.0 for all but ``people`` (NA); their QPHENOs."""
    header, rows = table(site / "data" / "covar.tsv")
    for i, r in enumerate(rows):
        r.append("NA" if i in people else "1.0")
    write_table(site / "data" / "covar.tsv", [*header, "X"], rows)
    p_header, p_rows = table(site / "data" / "pheno.tsv")
    by_iid = {r[1]: r[p_header.index("QPHENO")] for r in p_rows}
    return [float(by_iid[rows[i][1]]) for i in people]


def _measured(site: Path, how_many: int) -> list[int]:
    """Rows of the covariate table whose sample has QPHENO and AGE."""
    header, rows = table(site / "data" / "covar.tsv")
    p_header, p_rows = table(site / "data" / "pheno.tsv")
    q = {r[1]: r[p_header.index("QPHENO")] for r in p_rows}
    ok = [
        i
        for i, r in enumerate(rows)
        if q.get(r[1], "NA") not in ("NA", "-9") and r[header.index("AGE")] not in ("NA", "-9")
    ]
    return ok[:how_many]


GLM_AGE_X = {"kind": "glm", "id": "g", "phenotype": "QPHENO", "covariates": ["AGE", "X"]}


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_take_back__one_person_missing_only_a_constant_covariate_is_not_differenced(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """X is constant where known, missing for one person at site-a who has everything else.

    plink2 leaves X out and takes that person back, so GenoFed's glm asks
    ``glm_covariates`` and ``glm_stats`` again over the samples with AGE only:
    two sample sets one person apart in one study. Without the guard the
    analyst subtracts the two ``glm_stats`` replies and reads her QPHENO;
    with it the site serves the take-back round over the first round's
    samples (the one person is not taken back there: an earlier release's
    set inside the one asked for), so no second ``glm_stats`` is asked for,
    and the analyst is told one sample was left out.
    """
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    person = _measured(sites[0], 4)[3]
    (y,) = add_constant_covariate_missing_for(sites[0], [person])
    for other in sites[1:]:
        add_constant_covariate_missing_for(other, [])
    transport = Recording(sites)
    if not guard:
        run(study("age-x", GLM_AGE_X), transport, tmp_path / "a")
        first, second = transport.arrays("site-a", "glm_stats")
        recovered = sum_y(second["zz"], 2) - sum_y(first["zz"], 2)
        assert recovered == pytest.approx(y, abs=1e-9)  # the attack works
        return
    run(study("age-x", GLM_AGE_X), transport, tmp_path / "a")
    (first,) = transport.arrays("site-a", "glm_stats")  # no second one was asked for
    (covs,) = transport.arrays("site-a", "glm_covariates")
    assert covs["n"][0] == first["zz"][0]  # over the first round's samples: nobody taken back
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "a" / "provenance.json").read_text())["summary"]
    assert summary["guard_left_out"] == [{"site": "site-a", "analysis": "g", "samples": 1}]


def test_take_back__min_cell_count_people_missing_only_it_are_taken_back_with_the_guard_on(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """With ``min_cell_count`` people at every site taken back, the guard lets the rounds go.

    (The samples left out of both sets must be none or ``min_cell_count``
    too: the genotype sums over everyone, S1 and the first round's outside
    counts would otherwise tell apart the one or two who lack QPHENO or AGE.
    So ten more at each site lack QPHENO.)
    """
    sites = federation(cohort, tmp_path / "sites", guard=True)
    for site in sites:
        measured = _measured(site, 2 * MIN_CELL)
        add_constant_covariate_missing_for(site, measured[:MIN_CELL])
        _, rows = table(site / "data" / "covar.tsv")
        unmeasured = {rows[i][1] for i in measured[MIN_CELL:]}
        p_header, p_rows = table(site / "data" / "pheno.tsv")
        for r in p_rows:
            if r[1] in unmeasured:
                r[p_header.index("QPHENO")] = "NA"
        write_table(site / "data" / "pheno.tsv", p_header, p_rows)
    transport = Recording(sites)
    run(study("age-x", GLM_AGE_X), transport, tmp_path / "a")
    for site in sites:
        first, second = transport.arrays(site.name, "glm_stats")
        assert second["zz"][0] == first["zz"][0] + MIN_CELL
        (covs,) = transport.arrays(site.name, "glm_covariates")
        assert covs["n"][0] == second["zz"][0]
    summary = json.loads((tmp_path / "a" / "provenance.json").read_text())["summary"]["g"]
    assert summary["constant covariates left out"] == "X"
    assert summary["samples taken back (missed only left-out covariates)"] == 3 * MIN_CELL


class AsksWithItsOwnMask(Recording):
    """A hostile coordinator: after each glm_stats it asks site-a again with BMI unused."""

    def __init__(self, site_dirs: Sequence[Path], mask: np.ndarray) -> None:
        super().__init__(site_dirs)
        self.mask = mask
        self.second: Incoming | None = None

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        got = super().exchange(outgoing, timeout=timeout)
        for node, o in outgoing.items():
            if o.request.kind == "glm_stats" and self.site_dirs[node].name == "site-a":
                again = Outgoing(o.request, {**o.inputs, "covariates_used": self.mask})
                self.second = super().exchange({node: again}, timeout=timeout)[node]
        return got


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_covariate_mask__a_coordinator_dropping_a_covariate_itself_gets_the_same_samples(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """The mask is the coordinator's to send: the site's guard, not the coordinator, decides.

    With the guard on, the larger set the mask asks for is served over the
    first request's samples, so the two replies' sums over y are equal.
    """
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    _, y = add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    transport = AsksWithItsOwnMask(sites, np.array([1, 0], dtype=np.uint8))
    run(study("age-bmi", GLM_AGE_BMI), transport, tmp_path / "a")
    assert transport.second is not None
    stats = transport.arrays("site-a", "glm_stats")
    if not guard:
        first, second = stats
        assert sum_y(second["zz"], 2) - sum_y(first["zz"], 2) == pytest.approx(y, abs=1e-9)
        return
    first, second = stats[0], transport.second.arrays  # the site answered both
    assert second["zz"][0] == first["zz"][0]  # the same samples
    assert sum_y(second["zz"], 2) - sum_y(first["zz"], 2) == 0.0  # nothing to subtract
    assert not refusals(sites[0])


def test_covariate_mask__a_malformed_mask_is_a_bad_request(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)
    transport = AsksWithItsOwnMask(sites, np.array([1, 0, 1], dtype=np.uint8))
    run(study("age", GLM_AGE), transport, tmp_path / "a")
    assert transport.second is not None and not transport.second.arrays
    assert refusals(sites[0])[-1].startswith("BAD_REQUEST: ")


GLM_DISEASE_AGE_BMI = {
    "kind": "glm",
    "id": "g",
    "phenotype": "DISEASE",
    "covariates": ["AGE", "BMI"],
    "model": "logistic",
}


class AsksSeparationItsOwnWay(Recording):
    """A hostile coordinator: each glm_separation to site-a is asked again with its own
    centre and scale, and with a mask that leaves BMI out (which would take back the one
    person who lacks BMI)."""

    CENTER = np.array([41.0, -7.0])
    SCALE = np.array([0.125, 3.0])

    def __init__(self, site_dirs: Sequence[Path]) -> None:
        super().__init__(site_dirs)
        self.crafted: Incoming | None = None
        self.masked: Incoming | None = None
        self.honest: Mapping[str, np.ndarray] = {}

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        got = super().exchange(outgoing, timeout=timeout)
        for node, o in outgoing.items():
            if o.request.kind == "glm_separation" and self.site_dirs[node].name == "site-a":
                self.honest = o.inputs
                crafted = {**o.inputs, "center": self.CENTER, "scale": self.SCALE}
                self.crafted = super().exchange(
                    {node: Outgoing(o.request, crafted)}, timeout=timeout
                )[node]
                masked = {**o.inputs, "covariates_used": np.array([1, 0], dtype=np.uint8)}
                self.masked = super().exchange(
                    {node: Outgoing(o.request, masked)}, timeout=timeout
                )[node]
        return got


def test_separation_round__a_coordinators_own_centre_and_scale_tell_only_power_sums(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """The glm_separation reply, asked with any centre and scale, follows from the sums of
    C, C^2 (in glm_stats' zz), C^3 and C^4 over the analysis samples: asking again with
    other inputs tells the coordinator nothing new. And a mask that would take back the
    one person missing BMI is served over the same samples (the guard), so the AGE sums
    of the two replies are equal: nothing to subtract."""
    sites = federation(cohort, tmp_path / "sites", guard=True)
    add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    transport = AsksSeparationItsOwnWay(sites)
    run(study("sep", GLM_DISEASE_AGE_BMI), transport, tmp_path / "a")
    assert transport.crafted is not None and transport.masked is not None
    (stats,) = transport.arrays("site-a", "glm_stats")
    honest = transport.arrays("site-a", "glm_separation")[0]  # then the two crafted ones
    zz = stats["zz"]  # z = [1, AGE, BMI, y]: n, sums of AGE and BMI, their squares
    n, sums, squares = zz[0], zz[1:3], np.array([zz[4], zz[7]])
    center, scale = transport.honest["center"], transport.honest["scale"]
    # the power sums the honest reply gives, then the crafted reply predicted from them
    p1, p2 = sums - n * center, squares - 2 * center * sums + n * center**2
    s3 = honest["moments"][:, 0] * scale**3  # sum (C - c)^3
    s4 = honest["moments"][:, 1] * scale**4
    c3 = s3 + 3 * center * p2 + 3 * center**2 * p1 + n * center**3  # sum C^3
    c4 = s4 + 4 * center * c3 - 6 * center**2 * squares + 4 * center**3 * sums - n * center**4
    a, b = AsksSeparationItsOwnWay.CENTER, AsksSeparationItsOwnWay.SCALE
    pred3 = (c3 - 3 * a * squares + 3 * a**2 * sums - n * a**3) / b**3
    pred4 = (c4 - 4 * a * c3 + 6 * a**2 * squares - 4 * a**3 * sums + n * a**4) / b**4
    crafted = transport.crafted.arrays["moments"]
    assert crafted[:, 0] == pytest.approx(pred3, rel=1e-6)
    assert crafted[:, 1] == pytest.approx(pred4, rel=1e-6)
    masked = transport.masked.arrays["moments"]
    assert masked[0] == pytest.approx(honest["moments"][0], rel=1e-12)  # AGE: same samples
    assert not refusals(sites[0])


def test_separation_round__malformed_centre_or_scale_is_a_bad_request(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = federation(cohort, tmp_path / "sites", guard=True)
    for site in sites:
        add_covariate_missing_for(site, person=None)

    class ZeroScale(AsksSeparationItsOwnWay):
        SCALE = np.array([0.0, 1.0])

    transport = ZeroScale(sites)
    run(study("sep", GLM_DISEASE_AGE_BMI), transport, tmp_path / "a")
    assert transport.crafted is not None and not transport.crafted.arrays
    assert refusals(sites[0])[-1].startswith("BAD_REQUEST: ")


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_prs_after_the_gwas__a_cohort_one_person_larger_is_served_over_the_gwas_set(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """A GWAS on AGE+BMI, then a PRS on AGE alone: one person more (she lacks BMI).

    Without the guard the prs_stats sums of y over the score's samples minus the
    GWAS's glm_stats sums of y give her QPHENO. With it the site serves every prs
    round over the GWAS's samples (the largest earlier set inside the cohort),
    says it left one out, and the difference is nothing.
    """
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    _, y = add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    transport = Recording(sites)
    run(study("age-bmi", GLM_AGE_BMI), transport, tmp_path / "a")
    prs = {
        "kind": "prs",
        "id": "p",
        "scoring_file": str(cohort.scoring_file),
        "phenotype": "QPHENO",
        "covariates": ["AGE"],
    }
    run(study("prs", prs), transport, tmp_path / "b")
    (gwas,) = transport.arrays("site-a", "glm_stats")
    (stats,) = transport.arrays("site-a", "prs_stats")
    difference = sum_y(stats["zz"], 1) - sum_y(gwas["zz"], 2)
    if not guard:
        assert difference == pytest.approx(y, abs=1e-9)  # the attack works
        return
    assert difference == 0.0 and stats["zz"][0] == gwas["zz"][0]
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "b" / "provenance.json").read_text())["summary"]
    assert {"site": "site-a", "analysis": "p", "samples": 1} in summary["guard_left_out"]


def test_train_after_the_gwas__a_cohort_one_person_larger_is_served_over_the_gwas_set(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """A logistic GWAS on AGE+BMI, then a model trained on AGE alone (one person more, who
    lacks BMI): every train round is over the GWAS's samples (the FedAvg weight says so),
    and the summary says one was left out, instead of a refusal."""
    sites = federation(cohort, tmp_path / "sites", guard=True)
    add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    transport = Recording(sites)
    run(study("gwas", GLM_DISEASE_AGE_BMI), transport, tmp_path / "a")
    train = {
        "kind": "train",
        "id": "t",
        "target": "DISEASE",
        "variants": list(cohort.causal_variants)[:5],
        "covariates": ["AGE"],
        "covariate_ranges": [[30, 80]],
        "rounds": 2,
        "noise_multiplier": 0.0,
    }
    run(study("train", train), transport, tmp_path / "b")
    (gwas,) = transport.arrays("site-a", "glm_stats")
    weights = [a["train_samples"][0] for a in transport.arrays("site-a", "train_round")]
    assert weights and set(weights) == {gwas["zz"][0]}
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "b" / "provenance.json").read_text())["summary"]
    assert {"site": "site-a", "analysis": "t", "samples": 1} in summary["guard_left_out"]


def make_one_patient_aged(sites: Sequence[Path], age: int, person: int) -> tuple[str, float]:
    """Nobody at any site is ``age`` years old but site-a's ``person``; return their IID, QPHENO."""
    for site in sites:
        header, rows = table(site / "data" / "covar.tsv")
        j = header.index("AGE")
        for i, r in enumerate(rows):
            if float(r[j]) == age and not (site == sites[0] and i == person):
                r[j] = str(age + 1)
        if site == sites[0]:
            rows[person][j] = str(age)
        write_table(site / "data" / "covar.tsv", header, rows)
    iid = table(sites[0] / "data" / "covar.tsv")[1][person][1]
    p_header, p_rows = table(sites[0] / "data" / "pheno.tsv")
    return iid, float(next(r[p_header.index("QPHENO")] for r in p_rows if r[1] == iid))


def cohort_study(name: str, where: str) -> Study:
    glm = {"kind": "glm", "id": "g", "phenotype": "QPHENO", "covariates": ["SEX"]}
    return study_from_mapping(
        {"study": {"name": name}, "cohort": {"where": [where]}, "analysis": [glm]},
        path=Path("<attack>"),
    )


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_cohort_threshold__two_cohorts_one_patient_apart_are_not_differenced(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """AGE >= 40, then AGE >= 41, where one patient is 40: the second is refused."""
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    _, y = make_one_patient_aged(sites, 40, person=5)
    transport = Recording(sites)
    run(cohort_study("from-40", "AGE >= 40"), transport, tmp_path / "a")
    if not guard:
        run(cohort_study("from-41", "AGE >= 41"), transport, tmp_path / "b")
        first, second = transport.arrays("site-a", "glm_stats")
        recovered = sum_y(first["zz"], 1) - sum_y(second["zz"], 1)
        assert recovered == pytest.approx(y, abs=1e-9)  # the attack works
        return
    with pytest.raises(SiteFailure) as info:
        run(cohort_study("from-41", "AGE >= 41"), transport, tmp_path / "b")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert "by 1 person" in str(info.value)
    assert len(transport.arrays("site-a", "glm_stats")) == 1  # the second never left
    assert refusals(sites[0])[-1].startswith("DISCLOSURE_RISK: ")
    assert not (tmp_path / "b").exists()


def test_cohort_threshold__the_wider_cohort_second_is_served_over_the_narrower(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """AGE >= 41 first, then AGE >= 40 (one patient more): served over the first's samples."""
    sites = federation(cohort, tmp_path / "sites", guard=True)
    make_one_patient_aged(sites, 40, person=5)
    transport = Recording(sites)
    run(cohort_study("from-41", "AGE >= 41"), transport, tmp_path / "a")
    run(cohort_study("from-40", "AGE >= 40"), transport, tmp_path / "b")
    first, second = transport.arrays("site-a", "glm_stats")
    assert second["zz"][0] == first["zz"][0]  # the same samples
    assert sum_y(second["zz"], 1) - sum_y(first["zz"], 1) == 0.0  # nothing left to subtract
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "b" / "provenance.json").read_text())["summary"]
    assert summary["guard_left_out"] == [{"site": "site-a", "analysis": "g", "samples": 1}]
    assert summary["cohort"]["definition"] == "AGE >= 40"


def _common_everywhere(sites: Sequence[Path]) -> list[int]:
    """Variants whose three genotype classes hold 15 or more samples at every site."""
    ok = None
    for site in sites:
        bed = open_bed(next((site / "data").glob("*.bed")))
        codes = bed.read(dtype="float32")
        here = np.all([(codes == g).sum(axis=0) >= 15 for g in (0.0, 1.0, 2.0)], axis=0)
        ok = here if ok is None else ok & here
    assert ok is not None
    return [int(j) for j in np.flatnonzero(ok)]


def _two_nested_missing_sets(site: Path, common: Sequence[int]) -> tuple[str, str]:
    """Variant A misses samples 0..11 and variant B samples 0..12 at ``site``; their IDs.

    B's missing-call set differs from A's by one person: releasing both
    missing-call corrections would give that person's phenotype and
    covariates (B's minus A's), so the guard refuses B's set.
    """
    bed_path = next((site / "data").glob("*.bed"))
    bed = open_bed(bed_path)
    codes = bed.read(dtype="float32")
    ids = list(bed.sid)
    iids = list(bed.iid)
    bed.__del__()
    header, rows = table(site / "data" / "pheno.tsv")
    c_header, c_rows = table(site / "data" / "covar.tsv")
    has = {
        r[1]
        for r in rows
        if all(r[header.index(c)] not in ("NA", "-9") for c in ("QPHENO", "DISEASE"))
    }
    has &= {r[1] for r in c_rows if r[c_header.index("AGE")] not in ("NA", "-9")}
    chosen = [i for i, iid in enumerate(iids) if iid in has][:13]
    rest = np.ones(len(iids), dtype=bool)
    rest[chosen] = False
    usable = [
        j for j in common if all(int((codes[rest, j] == g).sum()) >= 15 for g in (0.0, 1.0, 2.0))
    ]
    a, b = usable[0], usable[1]
    codes[chosen[:12], a] = np.nan
    codes[chosen, b] = np.nan
    to_bed(
        bed_path,
        codes,
        properties={
            k: getattr(open_bed(bed_path), k)
            for k in ("fid", "iid", "father", "mother", "sex", "pheno", "chromosome", "sid")
        }
        | {
            k: getattr(open_bed(bed_path), k)
            for k in ("cm_position", "bp_position", "allele_1", "allele_2")
        },
    )
    return ids[a], ids[b]


@pytest.mark.parametrize("mode", ["withhold", "impute-unreleasable"])
def test_missing_call_sets_one_person_apart__withheld_or_imputed_never_released(
    larger: SynthSummary, tmp_path: Path, mode: str
) -> None:
    """The guard refuses B's missing-call set; B is then withheld, or (opt-in) imputed at site-a.

    Either way site-a's reply carries no missing-call sums for B, and a
    logistic GWAS with the same option runs its Newton rounds on the same
    (imputed) codes instead of refusing them.
    """
    sites = federation(larger, tmp_path / "sites", guard=True)
    a, b = _two_nested_missing_sets(sites[0], _common_everywhere(sites))
    transport = Recording(sites)
    linear = {**GLM_AGE, "few_missing": mode}
    run(study("linear", linear), transport, tmp_path / "lin")
    header, rows = table(tmp_path / "lin" / "gwas.QPHENO.glm.linear")
    rows = [r for r in rows if r[header.index("TEST")] == "ADD"]
    beta = {r[header.index("ID")]: r[header.index("BETA")] for r in rows}
    (stats,) = transport.arrays("site-a", "glm_stats")
    variants = [r[header.index("ID")] for r in rows]
    missing_rows = np.unpackbits(stats["miss_rows"], count=len(variants)).astype(bool)
    assert missing_rows[variants.index(a)] and not missing_rows[variants.index(b)]
    assert beta[a] != "NA"
    if mode == "withhold":
        assert beta[b] == "NA"
        return
    assert beta[b] != "NA"
    summary = json.loads((tmp_path / "lin" / "provenance.json").read_text())["summary"]
    assert {"site": "site-a", "analysis": "g", "variants": 1} in summary["glm_imputed_variants"]
    # a logistic GWAS (on a federation of its own: its cohort crosses the linear one's)
    sites = federation(larger, tmp_path / "sites-2", guard=True)
    assert _two_nested_missing_sets(sites[0], _common_everywhere(sites)) == (a, b)
    logistic = {"kind": "glm", "id": "d", "phenotype": "DISEASE", "covariates": ["AGE"]}
    run(study("logistic", {**logistic, "few_missing": mode}), Recording(sites), tmp_path / "log")
    assert not refusals(sites[0])
    header, rows = table(tmp_path / "log" / "gwas.DISEASE.glm.logistic.hybrid")
    assert {r[header.index("ID")]: r for r in rows}[b][header.index("OR")] != "NA"


@pytest.fixture(scope="module")
def with_pgx(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    root = tmp_path_factory.mktemp("pgx")
    return write_cohorts(root / "c", sites=3, samples=600, variants=120, seed=13, pgx=True)


def test_pgx_after_the_gwas__its_count_tables_are_served_over_the_gwas_samples(
    with_pgx: SynthSummary, tmp_path: Path
) -> None:
    """pgx counts every genotyped sample; after a GWAS lacking three, over the GWAS's samples.

    Over everyone its diplotype tables would differ from the GWAS's genotype
    sums by those three people (refused before); served over the GWAS set,
    the tables count exactly the GWAS's samples.
    """
    sites = federation(with_pgx, tmp_path / "sites", guard=True)
    pheno = sites[0] / "data" / "pheno.tsv"
    header, rows = table(pheno)
    for i, r in enumerate(rows):  # exactly three genotyped patients lack the phenotype
        r[header.index("QPHENO")] = "NA" if i in (2, 3, 4) else "0.5"
    write_table(pheno, header, rows)
    transport = Recording(sites)
    run(study("age", GLM_AGE), transport, tmp_path / "gwas")
    run(study("pgx", {"kind": "pgx", "id": "x", "genes": ["CYP2C19"]}), transport, tmp_path / "p")
    assert not refusals(sites[0])
    summary = json.loads((tmp_path / "p" / "provenance.json").read_text())["summary"]
    left_out = {(m["site"], m["analysis"]): m["samples"] for m in summary["guard_left_out"]}
    genotyped = len(next((sites[0] / "data").glob("*.fam")).read_text().splitlines())
    assert left_out[("site-a", "x")] == 3
    (counts,) = transport.arrays("site-a", "pgx_counts")
    (gwas,) = transport.arrays("site-a", "glm_stats")
    counted = int(counts["CYP2C19.phenotype_counts"].sum() + counts["CYP2C19.not_called"].sum())
    withheld = bool(
        counts["CYP2C19.phenotype_withheld"].any() or counts["CYP2C19.not_called_withheld"].any()
    )
    assert int(gwas["zz"][0]) == genotyped - 3
    if not withheld:
        assert counted == genotyped - 3


def _with_values(site: Path, *columns: str) -> int:
    """How many of the site's samples have a value in every named column of its tables."""
    present: dict[str, set[str]] = {}
    for name in ("pheno.tsv", "covar.tsv"):
        header, rows = table(site / "data" / name)
        for c in columns:
            if c in header:
                at = header.index(c)
                present[c] = {r[1] for r in rows if r[at] not in ("NA", "-9", ".", "nan")}
    return len(set.intersection(*(present[c] for c in columns)))


def test_require__a_study_whose_gwas_lacks_a_few_runs_every_analysis_on_its_people(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """freq then a glm on AGE + BMI, one person at site-a without BMI, in one study.

    The glm's genotype sums would differ from the freq counts by that person,
    so the site refuses the study; with ``[cohort] require = ["BMI"]`` every
    analysis runs on the people with BMI (freq included), and nothing is left
    to subtract. The attacker's use of ``require`` to cut one person out (a
    later freq over everyone but the one without BMI) meets the guard as any
    cohort does.
    """
    sites = federation(cohort, tmp_path / "sites", guard=True)
    add_covariate_missing_for(sites[0], person=3)
    for other in sites[1:]:
        add_covariate_missing_for(other, person=None)
    transport = Recording(sites)
    freq_then_glm = [{"kind": "freq"}, GLM_AGE_BMI]
    with pytest.raises(SiteFailure) as info:
        run(study("qc-gwas", *freq_then_glm), transport, tmp_path / "a")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert "require = [" in str(info.value)  # the refusal says how to fix the study
    assert not (tmp_path / "a").exists()

    fresh = federation(cohort, tmp_path / "fresh", guard=True)
    add_covariate_missing_for(fresh[0], person=3)
    for other in fresh[1:]:
        add_covariate_missing_for(other, person=None)
    transport = Recording(fresh)
    required = study_from_mapping(
        {
            "study": {"name": "qc-gwas-required"},
            "cohort": {"require": ["BMI", "AGE", "QPHENO"]},
            "analysis": freq_then_glm,
        },
        path=Path("<attack>"),
    )
    assert required.cohort is not None
    assert required.cohort.text() == "BMI present and AGE present and QPHENO present"
    run(required, transport, tmp_path / "b")
    assert not refusals(fresh[0])
    (glm,) = transport.arrays("site-a", "glm_stats")
    (counts,) = transport.arrays("site-a", "genotype_counts")
    n_glm = int(glm["zz"][0])
    assert n_glm == _with_values(fresh[0], "BMI", "AGE", "QPHENO")  # fewer than genotyped
    assert n_glm < len((next((fresh[0] / "data").glob("*.fam"))).read_text().splitlines())
    released = counts["genotype_counts"][counts["genotype_counts"].sum(axis=1) > 0]
    assert len(released) and (released.sum(axis=1) == n_glm).all()  # the glm's people, no more
    summary = json.loads((tmp_path / "b" / "provenance.json").read_text())["summary"]
    assert "guard_left_out" not in summary

    # require as a cutting tool: everyone, then everyone with BMI (one person less)
    attacker = federation(cohort, tmp_path / "attacker", guard=True)
    add_covariate_missing_for(attacker[0], person=3)
    for other in attacker[1:]:
        add_covariate_missing_for(other, person=None)
    transport = Recording(attacker)
    run(study("everyone", {"kind": "freq"}), transport, tmp_path / "c")
    cut = study_from_mapping(
        {"study": {"name": "cut"}, "cohort": {"require": ["BMI"]}, "analysis": [{"kind": "freq"}]},
        path=Path("<attack>"),
    )
    with pytest.raises(SiteFailure) as info:
        run(cut, transport, tmp_path / "d")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert len(transport.arrays("site-a", "genotype_counts")) == 1  # the second never left


def _one_nonfounder(site: Path, person: int) -> np.ndarray:
    """Name a father for one sample of the site's .fam; return that sample's genotypes."""
    fam = next((site / "data").glob("*.fam"))
    lines = [line.split() for line in fam.read_text().splitlines()]
    lines[person][2] = lines[person + 1][1]
    fam.write_text("\n".join("\t".join(f) for f in lines) + "\n")
    return open_bed(fam.with_suffix(".bed")).read(np.s_[person, :], dtype="int8")[0]


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_founders_table__beside_every_sample_s_it_would_give_one_nonfounder_away(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """plink2 counts founders only for --freq: the two tables differ by the nonfounders."""
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    genotypes = _one_nonfounder(sites[0], person=4)
    transport = Recording(sites)
    counts = study("qc", {"kind": "freq"})
    if not guard:
        run(counts, transport, tmp_path / "a")
        (got,) = transport.arrays("site-a", "genotype_counts")
        both = ~got["suppressed"]
        diff = got["genotype_counts"][both] - got["founder_genotype_counts"][both]
        a1_copies = diff[:, :3].argmax(axis=1)  # the one person's class per variant
        # bed-reader counts allele 1 of the .bim; the study's ALT is allele 1 too
        assert both.sum() > 10 and (diff.sum(axis=1) == 1).all()  # the attack works
        assert (a1_copies == genotypes[both]).all()
        return
    with pytest.raises(SiteFailure) as info:
        run(counts, transport, tmp_path / "a")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert "nonfounders = true" in str(info.value)
    assert not transport.arrays("site-a", "genotype_counts")  # nothing left
    every = study_from_mapping(
        {
            "study": {"name": "qc-all", "nonfounders": True},
            "analysis": [{"kind": "freq"}],
        },
        path=Path("<attack>"),
    )
    approve(sites[0], every.sha256, by="officer")  # alice's refusal suspended auto-approval
    run(every, transport, tmp_path / "b")
    (got,) = transport.arrays("site-a", "genotype_counts")
    assert "founder_genotype_counts" not in got


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_founders_table__glm_s_founder_counts_beside_its_other_counts_are_withheld(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """glm's A1 counts over the founders, beside its counts over everyone, would differ by one."""
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    genotypes = _one_nonfounder(sites[2], person=4)  # site-c: every genotyped sample analysed
    transport = Recording(sites)
    run(study("gwas", GLM_AGE), transport, tmp_path / "a")
    (got,) = transport.arrays("site-c", "glm_stats")
    if guard:
        assert "founder_counts" not in got  # withheld: A1 from every sample's counts
        return
    everyone = got["gz"][:, 0]  # ALT dosage over the analysis samples: every genotyped one
    assert not got["other_counts"].size
    diff = everyone - got["founder_counts"][:, 1]
    kept = ~np.unpackbits(got["withheld"])[: len(diff)].astype(bool)
    assert kept.sum() > 10 and (diff[kept] == genotypes[kept]).all()  # the attack works
    assert not got["founder_counts"][~kept].any()  # withheld rows send no counts


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_hwe_controls__a_site_with_one_case_does_not_give_its_genotypes_away(
    cohort: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """[qc] hwe_controls: every sample's counts minus the controls' are the cases' genotypes."""
    sites = federation(cohort, tmp_path / "sites", guard=guard)
    for site in sites:  # a [qc] is computed from the counts gcount releases
        text = (site / POLICY_FILE).read_text().replace('"freq",', '"freq", "gcount",')
        (site / POLICY_FILE).write_text(text)
    header, rows = table(sites[0] / "data" / "pheno.tsv")
    at = header.index("DISEASE")
    for i, r in enumerate(rows):
        r[at] = "2" if i == 4 else "1"  # one case at site-a
    write_table(sites[0] / "data" / "pheno.tsv", header, rows)
    fam = next((sites[0] / "data").glob("*.fam"))
    person = next(
        i for i, line in enumerate(fam.read_text().splitlines()) if line.split()[1] == rows[4][1]
    )
    genotypes = open_bed(fam.with_suffix(".bed")).read(np.s_[person, :], dtype="int8")[0]
    transport = Recording(sites)
    qc = study_from_mapping(
        {
            "study": {"name": "qc"},
            "qc": {"hwe": 1e-6, "hwe_controls": "DISEASE"},
            "analysis": [{"kind": "freq"}],
        },
        path=Path("<attack>"),
    )
    if not guard:
        run(qc, transport, tmp_path / "a")
        (got,) = transport.arrays("site-a", "genotype_counts")
        kept = ~got["suppressed"]
        diff = got["genotype_counts"][kept] - got["control_genotype_counts"][kept]
        assert kept.sum() > 10 and (diff[:, :3].argmax(axis=1) == genotypes[kept]).all()
        return
    with pytest.raises(SiteFailure) as info:
        run(qc, transport, tmp_path / "a")
    assert info.value.site == "site-a" and info.value.reason_code == "DISCLOSURE_RISK"
    assert "hwe_controls" in str(info.value)
    assert not transport.arrays("site-a", "genotype_counts")


@pytest.mark.parametrize("guard", [False, True], ids=["guard off", "guard on"])
def test_founders_table__pca_s_founders_counts_beside_every_sample_s_are_withheld(
    larger: SynthSummary, tmp_path: Path, guard: bool
) -> None:
    """pca_counts' founders' table beside its every-sample table would differ by one."""
    sites = federation(larger, tmp_path / "sites", guard=guard)
    genotypes = _one_nonfounder(sites[0], person=4)
    transport = Recording(sites)
    run(
        study("pca", {"kind": "pca", "id": "pca", "n_pcs": 2, "maf": 0.05}),
        transport,
        tmp_path / "a",
    )
    (got,) = transport.arrays("site-a", "pca_counts")
    kept = ~got["withheld"].astype(bool)
    diff = got["genotype_counts"][kept] - got["founder_genotype_counts"][kept]
    if guard:
        assert kept.sum() > 10 and not diff.any()  # every sample's counts sent twice
        return
    assert kept.sum() > 10 and (diff[:, :3].argmax(axis=1) == genotypes[kept]).all()  # attack works
