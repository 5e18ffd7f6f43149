"""Membership inference, run for real: the likelihood-ratio and Homer attacks against releases.

The estimate (:mod:`genofed.common.membership`) is validated
against the attacks it bounds: the likelihood-ratio (LR) test of Sankararaman
et al. (2009) and Homer et al.'s (2008) distance test, each calibrated at a
5 % false-positive rate on non-members, so "power" is the share of members
called members. Measured power must be at most the estimate plus a small
margin (sampling error of the measured share and of the calibration).

1. Binomial genotypes from known population frequencies, over (n, M) pairs,
   with independent variants and with variants in strong LD (blocks of
   near-copies), the attacker knowing the population frequencies.
2. The repo's synthetic cohort (coalescent genotypes, so real LD, two
   ancestries) through the real release path: a ``freq`` study over the male
   samples of a site, attacked with the released counts, females being the
   non-members (half of them the attacker's reference). Without the policy's
   limit the estimate is near 1 (the attacks, weakened by the short genome's
   strong LD, measure far less: the estimate is conservative there); with
   ``max_membership_power = 0.1`` the site withholds variants, reports an
   estimate under 0.1, and the attacks measure at most about that.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from bed_reader import open_bed

from genofed.common.errors import SiteFailure
from genofed.common.membership import (
    attacker_frequency,
    panel_terms,
    power,
    site_terms,
)
from genofed.common.messages import AuditKind
from genofed.common.signing import public_key_text, sign_study
from genofed.common.study import study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.audit.report import render_report
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import SynthSummary, write_cohorts
from tests.privacy.test_attacks import Recording
from tests.privacy_cases import ANALYST

ALPHA = 0.05
#: The released cohort: the site's men of this age or older.
MEMBER_AGE = 55


def counts_of(g: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """(V, 3) genotype counts of a samples x variants 0/1/2 matrix."""
    return np.stack([(g == 0).sum(0), (g == 1).sum(0), (g == 2).sum(0)], axis=1)


def lr_scores(g: np.ndarray, counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The LR statistic of each row of ``g`` given released ``counts`` and a ``reference``."""
    n = counts.sum(axis=1).astype(np.float64)
    released = attacker_frequency(counts[:, 1] + 2.0 * counts[:, 2], n)
    q = np.clip(reference, 1e-4, 1 - 1e-4)
    a = np.log(released / q) - np.log((1 - released) / (1 - q))
    return np.asarray(g.astype(np.float32) @ a.astype(np.float32))


def homer_scores(g: np.ndarray, counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Homer's distance D = Σ |y − ref| − |y − mix| of each row of ``g`` (y = g / 2)."""
    mix = (counts[:, 1] + 2.0 * counts[:, 2]) / (2 * counts.sum(axis=1))
    y = g.astype(np.float32) / 2
    return np.asarray((np.abs(y - reference) - np.abs(y - mix)).sum(axis=1))


def measured(
    members: np.ndarray,
    outsiders: np.ndarray,
    member_group: np.ndarray | None = None,
    outsider_group: np.ndarray | None = None,
) -> float:
    """Share of members above the (1 − alpha) quantile of the outsiders' scores (per group)."""
    if member_group is None or outsider_group is None:
        return float((members > np.quantile(outsiders, 1 - ALPHA)).mean())
    called = np.zeros(len(members), dtype=np.bool_)
    for group in np.unique(member_group):
        threshold = np.quantile(outsiders[outsider_group == group], 1 - ALPHA)
        called[member_group == group] = members[member_group == group] > threshold
    return float(called.mean())


def lr_power(
    members: np.ndarray, outsiders: np.ndarray, counts: np.ndarray, reference: np.ndarray
) -> float:
    """Measured power of the LR test with released ``counts`` and the attacker's ``reference``."""
    return measured(lr_scores(members, counts, reference), lr_scores(outsiders, counts, reference))


def homer_power(
    members: np.ndarray, outsiders: np.ndarray, counts: np.ndarray, reference: np.ndarray
) -> float:
    """Measured power of Homer's distance test."""
    return measured(
        homer_scores(members, counts, reference), homer_scores(outsiders, counts, reference)
    )


def margin(n_members: int, n_outsiders: int, estimate: float) -> float:
    """Three standard errors of the measured share, plus the calibration's error at alpha."""
    share = 3 * np.sqrt(max(estimate, ALPHA) * (1 - min(estimate, 0.95)) / n_members)
    return float(share + 3 * np.sqrt(ALPHA * (1 - ALPHA) / n_outsiders) + 0.02)


def genotypes(
    rng: np.random.Generator, p: np.ndarray, n: int, block: int = 1
) -> npt.NDArray[np.int8]:
    """n x M genotypes; ``block`` > 1: each run of ``block`` variants (of one frequency)
    copies one haplotype pair with 2 % of alleles redrawn (r about 0.98 between them)."""
    if block == 1:
        return rng.binomial(2, p, size=(n, len(p))).astype(np.int8)
    haps = rng.random((2, n, len(p[::block]))) < p[::block][None, None, :]
    haps = np.repeat(haps, block, axis=2)[:, :, : len(p)]
    redraw = rng.random(haps.shape) < 0.02
    haps = np.where(redraw, rng.random(haps.shape) < p[None, None, :], haps)
    return haps.sum(axis=0).astype(np.int8)


@pytest.mark.parametrize(
    ("n", "m", "block"),
    [(50, 1000, 1), (200, 1000, 1), (1000, 1000, 1), (5000, 2000, 1), (1000, 1000, 5)],
    ids=["n50-M1k", "n200-M1k", "n1k-M1k", "n5k-M2k", "n1k-M1k-LD"],
)
def test_binomial_cohorts__measured_power_is_at_most_the_estimate(
    n: int, m: int, block: int
) -> None:
    rng = np.random.default_rng(n + m + block)
    p = rng.beta(0.5, 2.0, m).clip(0.01, 0.99)  # many rare-ish variants, as on an array
    p = np.repeat(p[::block], block)[:m]  # a block's variants share their frequency
    members = genotypes(rng, p, n, block)
    outsiders = genotypes(rng, p, 2000, block)
    counts = counts_of(members)  # monomorphic variants too: they exclude carriers
    by_site = power(site_terms(counts), ALPHA)
    by_panel = power(panel_terms(counts, p), ALPHA)
    lr = lr_power(members, outsiders, counts, p)
    homer = homer_power(members, outsiders, counts, p)
    for estimate in (by_site, by_panel):
        assert lr <= estimate + margin(n, len(outsiders), estimate)
        assert homer <= estimate + margin(n, len(outsiders), estimate)
    if block == 1:  # and the estimate is not a loose bound: the LR test comes close to it
        assert lr >= by_panel - margin(n, len(outsiders), by_panel)


# -- through the release path, on the synthetic cohort ------------------------------------


def policy(limit: float | None) -> str:
    check = "" if limit is None else f"max_membership_power = {limit}\nmembership_fpr = {ALPHA}\n"
    return f"""
[policy]
version = 1
allowed_analyses = ["variants", "freq"]
allowed_release_modes = ["plain"]
min_cohort_size = 20
min_cell_count = 10
{check}
[[policy.trusted_analysts]]
name = "alice"
public_key = "{public_key_text(ANALYST.public_key())}"

[[policy.auto_approve]]
name = "everything alice signs"
analysts = ["alice"]
"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    root = tmp_path_factory.mktemp("membership")
    return write_cohorts(root / "c", sites=1, samples=2000, variants=6000, seed=5, missing_rate=0)


def _site(cohort: SynthSummary, root: Path, limit: float | None, kind: str = "") -> Path:
    """The cohort's site under ``root`` with the membership policy (and ``kind`` allowed)."""
    site = root / "site"
    shutil.copytree(cohort.sites[0], site)
    text = policy(limit)
    if kind:
        text = text.replace('"freq"]', f'"freq", "{kind}"]')
    (site / POLICY_FILE).write_text(text)
    return site


def _run_men(name: str, analysis: dict[str, object], transport: Recording, root: Path) -> None:
    """One signed study of ``analysis`` over the site's older men."""
    study = study_from_mapping(
        {
            "study": {"name": name},
            "cohort": {"where": ["SEX == 1", f"AGE >= {MEMBER_AGE}"]},
            "analysis": [analysis],
        },
        path=Path("<membership>"),
    )
    run_study(
        study, transport, root / "out", engine="in-process", signature=sign_study(study, ANALYST)
    )


def release(cohort: SynthSummary, root: Path, limit: float | None) -> tuple[Path, Recording]:
    site = _site(cohort, root, limit)
    transport = Recording([site])
    _run_men("freq-of-the-men", {"kind": "freq", "id": "f"}, transport, root)
    return site, transport


def attack(cohort: SynthSummary, site: Path, transport: Recording) -> tuple[float, float, int, int]:
    """LR and Homer power on what the site released, and the numbers of members and variants.

    The synthetic cohort mixes two ancestries, which confounds a naive test (the
    share of each ancestry among the members differs by chance from the
    reference's). This attacker knows everyone's ancestry (as a PCA would tell):
    its reference is the non-members' frequencies per ancestry mixed in the
    members' proportions, and it calibrates its threshold within each ancestry.
    """
    (arrays,) = transport.arrays(site.name, "genotype_counts")
    released = ~arrays["suppressed"]
    with open_bed(site / "data" / "genotypes.bed") as bed:
        g = bed.read(dtype="int8")
    covar = [line.split("\t") for line in (site / "data" / "covar.tsv").read_text().splitlines()]
    pops = dict(
        (r[1], r[3])
        for r in (
            line.split("\t")
            for line in (cohort.out / "populations.tsv").read_text().splitlines()[1:]
        )
    )
    pop = np.array([pops[r[1]] for r in covar[1:]])
    sex = np.array([r[3] for r in covar[1:]])
    age = np.array([float(r[2]) for r in covar[1:]])
    is_member = (sex == "1") & (age >= MEMBER_AGE)
    counts = arrays["genotype_counts"][:, :3]
    if not np.array_equal(counts_of(g[is_member])[released], counts[released]):
        g = 2 - g  # bed_reader counted the other allele
    assert np.array_equal(counts_of(g[is_member])[released], counts[released])
    women = np.flatnonzero(sex == "2")
    panel, outsiders = women[::2], women[1::2]  # the attacker's reference, and its calibration
    reference = np.zeros(g.shape[1])
    for p in np.unique(pop):
        share = np.mean(pop[is_member] == p)
        rows = panel[pop[panel] == p]
        reference += share * attacker_frequency(
            g[rows].sum(axis=0, dtype=np.float64), np.full(g.shape[1], float(len(rows)))
        )
    m, c, q = g[:, released], counts[released], reference[released]
    scores = {
        "lr": (lr_scores(m[is_member], c, q), lr_scores(m[outsiders], c, q)),
        "homer": (homer_scores(m[is_member], c, q), homer_scores(m[outsiders], c, q)),
    }
    lr, homer = (
        measured(inside, outside, pop[is_member], pop[outsiders])
        for inside, outside in scores.values()
    )
    return lr, homer, int(is_member.sum()), int(released.sum())


def test_synth_release__the_limit_brings_the_attack_down_to_it(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    site, transport = release(cohort, tmp_path / "open", None)
    lr, homer, n_men, m = attack(cohort, site, transport)
    (arrays,) = transport.arrays(site.name, "genotype_counts")
    estimate = power(site_terms(arrays["genotype_counts"][~arrays["suppressed"]]), ALPHA)
    # strong LD (the coalescent genome is short) leaves the attacks far below the estimate
    assert estimate > 0.5
    assert max(lr, homer) <= estimate
    assert (
        "membership_power"
        not in json.loads((tmp_path / "open/out/provenance.json").read_text())["summary"]
    )

    site, transport = release(cohort, tmp_path / "checked", 0.1)
    lr, homer, n_men, m_checked = attack(cohort, site, transport)
    assert 0 < m_checked < m
    bound = 0.1 + margin(n_men, n_men // 2, 0.1)
    assert lr <= bound and homer <= bound
    # the reply says the estimate, the run summary and the results show it
    summary = json.loads((tmp_path / "checked/out/provenance.json").read_text())["summary"]
    (entry,) = summary["membership_power"]
    assert entry["site"] == "site-a" and entry["power"] <= 0.1
    listed = (tmp_path / "checked/out/suppressed.tsv").read_text().splitlines()
    assert len(listed) - 1 >= m - m_checked
    # the audit entry of the release records the decision with its estimated power
    leaves = [audit_entry_from_bytes(leaf) for leaf in read_site_log(site).leaves]
    (counts_release,) = [
        e for e in leaves if e.kind == AuditKind.RELEASE and e.request_kind == "genotype_counts"
    ]
    record = json.loads(counts_release.noise)["membership"]
    assert record["power"] <= 0.1 < record["power_before"]
    assert record["variants_withheld"] == record["variants_checked"] - m_checked
    assert record["reference"] == "site frequencies"
    # both reports show it: the analyst's under Privacy, the officer's on the release's line
    analyst = (tmp_path / "checked/out/report.html").read_text()
    table = analyst[analyst.index('id="membership-power"') :]
    assert "site-a" in table[: table.index("</table>")]
    officer = render_report(site)
    assert (
        f"membership test power (estimated)</th><td>{record['power']} after withholding" in officer
    )


# -- glm_stats: the same check over the analysis samples, and its Newton rounds --------------


class AsksForMembershipWithheld(Recording):
    """A hostile coordinator: its first Newton round asks about ``target`` (a study variant)."""

    def __init__(self, site_dirs: list[Path], target: int | None) -> None:
        super().__init__(site_dirs)
        self.target = target
        self.plan: dict[str, np.ndarray] = {}

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        changed = dict(outgoing)
        for node, o in outgoing.items():
            if o.request.kind == "glm_stats":
                self.plan = {k: o.inputs[k] for k in ("variant_index", "flip")}
            if o.request.kind == "glm_logistic" and self.target is not None:
                beta = o.inputs["beta"]
                changed[node] = Outgoing(
                    o.request,
                    {
                        **o.inputs,
                        "variant_index": self.plan["variant_index"][[self.target]],
                        "flip": self.plan["flip"][[self.target]],
                        "beta": np.zeros((1, beta.shape[1])),
                        "firth": np.array([False]),
                    },
                )
        return super().exchange(changed, timeout=timeout)


def glm_run(
    cohort: SynthSummary, root: Path, limit: float | None, target: int | None = None
) -> tuple[Path, AsksForMembershipWithheld]:
    site = _site(cohort, root, limit, "glm")
    transport = AsksForMembershipWithheld([site], target)
    _run_men(
        "gwas-of-the-men",
        {"kind": "glm", "id": "g", "phenotype": "DISEASE", "covariates": ["AGE"]},
        transport,
        root,
    )
    return site, transport


def test_glm__withholds_for_the_limit_and_refuses_a_newton_round_on_a_withheld_variant(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    _, open_run = glm_run(cohort, tmp_path / "open", None)
    _, checked = glm_run(cohort, tmp_path / "checked", 0.1)
    (before,) = open_run.arrays("site", "glm_stats")
    (after,) = checked.arrays("site", "glm_stats")
    n = len(open_run.plan["variant_index"])
    was = np.unpackbits(before["withheld"])[:n].astype(bool)
    now = np.unpackbits(after["withheld"])[:n].astype(bool)
    assert (now >= was).all() and now.sum() > was.sum()
    assert not after["gg"][now].any() and not after["gz"][now].any()
    summary = json.loads((tmp_path / "checked/out/provenance.json").read_text())["summary"]
    (entry,) = summary["membership_power"]
    assert entry["analysis"] == "g" and entry["power"] <= 0.1
    # a Newton round about a variant withheld only for the limit is refused
    target = int(np.flatnonzero(now & ~was)[0])
    with pytest.raises(SiteFailure) as info:
        glm_run(cohort, tmp_path / "hostile", 0.1, target)
    assert info.value.reason_code == "DISCLOSURE_RISK"
    assert "withheld from glm_stats" in str(info.value)


class PcaAsksForWithheld(Recording):
    """A hostile coordinator: the first pca round after the counts asks about ``target``."""

    def __init__(self, site_dirs: list[Path], target: int | None) -> None:
        super().__init__(site_dirs)
        self.target = target
        self.plan: dict[str, np.ndarray] = {}

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        changed = dict(outgoing)
        for node, o in outgoing.items():
            if o.request.kind == "pca_counts":
                self.plan = {k: o.inputs[k] for k in ("variant_index", "flip")}
            elif o.request.kind.startswith("pca_") and self.target is not None:
                changed[node] = Outgoing(
                    o.request,
                    {
                        **o.inputs,
                        "variant_index": self.plan["variant_index"][[self.target]],
                        "flip": self.plan["flip"][[self.target]],
                    },
                )
        return super().exchange(changed, timeout=timeout)


def pca_run(
    cohort: SynthSummary, root: Path, limit: float | None, target: int | None = None
) -> PcaAsksForWithheld:
    site = _site(cohort, root, limit, "pca")
    transport = PcaAsksForWithheld([site], target)
    _run_men("pca-of-the-men", {"kind": "pca", "id": "pca", "n_pcs": 2}, transport, root)
    return transport


def test_pca__its_counts_round_withholds_for_the_limit_and_later_rounds_refuse_those(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    (before,) = pca_run(cohort, tmp_path / "open", None).arrays("site", "pca_counts")
    (after,) = pca_run(cohort, tmp_path / "checked", 0.1).arrays("site", "pca_counts")
    was, now = before["withheld"], after["withheld"]
    assert (now >= was).all() and now.sum() > was.sum()
    assert not after["genotype_counts"][now].any()
    summary = json.loads((tmp_path / "checked/out/provenance.json").read_text())["summary"]
    (entry,) = summary["membership_power"]
    assert entry["analysis"] == "pca" and entry["power"] <= 0.1
    target = int(np.flatnonzero(now & ~was)[0])
    with pytest.raises(SiteFailure) as info:
        pca_run(cohort, tmp_path / "hostile", 0.1, target)
    assert info.value.reason_code == "DISCLOSURE_RISK"
    assert "withheld from pca_counts" in str(info.value)


class PrsScoresWithheld(Recording):
    """A hostile coordinator: its score rounds also use the rows the match round withheld."""

    def __init__(self, site_dirs: list[Path], hostile: bool) -> None:
        super().__init__(site_dirs)
        self.hostile = hostile

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        changed = dict(outgoing)
        for node, o in outgoing.items():
            if o.request.kind == "prs_moments" and self.hostile:
                (match,) = self.arrays("site", "prs_match")
                use = o.inputs["use_rows"] | match["effect_counts_withheld"]
                freq = np.where(use, 0.5, o.inputs["impute_freq"])
                changed[node] = Outgoing(
                    o.request, {**o.inputs, "use_rows": use, "impute_freq": freq}
                )
        return super().exchange(changed, timeout=timeout)


def prs_run(
    cohort: SynthSummary, root: Path, limit: float | None, hostile: bool = False
) -> PrsScoresWithheld:
    """A prs of every variant of the site (a genome-wide score) over the men."""
    site = _site(cohort, root, limit, "prs")
    bim = [line.split("\t") for line in (site / "data/genotypes.bim").read_text().splitlines()]
    weights = np.random.default_rng(2).uniform(0.1, 1.0, len(bim))
    scoring = root / "score.txt"
    scoring.write_text(
        "#format_version=2.0\n#pgs_id=WIDE\n#genome_build=NR\n"
        "rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\n"
        + "".join(
            f"{b[1]}\t{b[0]}\t{b[3]}\t{b[4]}\t{b[5]}\t{w:.4f}\n"
            for b, w in zip(bim, weights, strict=True)
        )
    )
    transport = PrsScoresWithheld([site], hostile)
    _run_men(
        "prs-of-the-men",
        {"kind": "prs", "id": "p", "scoring_file": str(scoring), "phenotype": "QPHENO"},
        transport,
        root,
    )
    return transport


def test_prs__its_match_round_withholds_for_the_limit_and_scoring_those_is_refused(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    (before,) = prs_run(cohort, tmp_path / "open", None).arrays("site", "prs_match")
    (after,) = prs_run(cohort, tmp_path / "checked", 0.1).arrays("site", "prs_match")
    was, now = before["effect_counts_withheld"], after["effect_counts_withheld"]
    assert (now >= was).all() and now.sum() > was.sum()
    assert not after["effect_counts"][now].any()
    summary = json.loads((tmp_path / "checked/out/provenance.json").read_text())["summary"]
    (entry,) = summary["membership_power"]
    assert entry["analysis"] == "p" and entry["power"] <= 0.1
    with pytest.raises(SiteFailure) as info:
        prs_run(cohort, tmp_path / "hostile", 0.1, hostile=True)
    assert info.value.reason_code == "DISCLOSURE_RISK"
    assert "withheld from prs_match" in str(info.value)
