"""Survival analyses end to end in-process: suppression, policy refusals, audit, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import ConfigError, InputError, SiteFailure
from genofed.common.messages import AuditKind
from genofed.common.study import Study, study_from_mapping
from genofed.common.wire.proto import audit_entry_from_bytes
from genofed.coordinator.runner import run_study
from genofed.site_agent.audit.log import read_site_log
from genofed.site_agent.privacy.policy import POLICY_FILE
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

GRID = [365.0, 730.0, 1095.0, 1461.0, 1826.0, 2191.0, 2557.0, 2922.0, 3287.0]
COMMON = {"time": "RFS_DAYS", "event": "RFS_EVENT"}


def _study(*analyses: dict[str, object]) -> Study:
    return study_from_mapping(
        {"study": {"name": "s"}, "analysis": list(analyses)}, path=Path("<t>")
    )


KM = {"kind": "km", **COMMON, "group": "RSCORE", "cuts": [18, 31], "grid": GRID}
COX = {"kind": "cox", **COMMON, "covariates": ["RSCORE", "AGE", "SEX"]}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return write_cohorts(
        tmp_path_factory.mktemp("surv") / "cohorts", sites=3, samples=450, variants=20, seed=9
    )


def _copy(cohort: SynthSummary, root: Path) -> list[Path]:
    sites = []
    for site in cohort.sites:
        shutil.copytree(site, root / site.name)
        sites.append(root / site.name)
    return sites


def _set_policy(site: Path, old: str, new: str) -> None:
    path = site / POLICY_FILE
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_km__small_risk_sets_are_withheld_and_marked_never_zero(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _copy(cohort, tmp_path)
    _set_policy(sites[1], "min_cell_count = 0", "min_cell_count = 15")
    out = tmp_path / "results"
    outcome = run_study(_study(KM), InProcessTransport(sites), out, engine="in-process")
    rows = [line.split("\t") for line in (out / "km.tsv").read_text().splitlines()[1:]]
    by_group: dict[str, list[list[str]]] = {}
    for row in rows:
        by_group.setdefault(row[0], []).append(row)
    suppressed_any = False
    for group_rows in by_group.values():
        flags = [r[2] == "SUPPRESSED" for r in group_rows]
        # once withheld, the rest of the curve is withheld too, and marked, not zero
        first = flags.index(True) if True in flags else len(flags)
        assert all(flags[first:]) and not any(flags[:first])
        for r in group_rows[first:]:
            assert r[3] == "SUPPRESSED" and r[4:] == ["NA", "NA", "NA"]
        suppressed_any |= first < len(flags)
    assert suppressed_any
    assert outcome.summary["km"]["cells withheld by sites"] > 0  # type: ignore[index]
    # the log-rank test uses only the grid prefix where every group is known
    logrank = (out / "logrank.tsv").read_text().splitlines()[1].split("\t")
    assert float(logrank[-1]) < GRID[-1]
    # the site's release and its audit entry say which cells were withheld
    snapshot = read_site_log(sites[1])
    releases = []
    for leaf in snapshot.leaves:
        entry = audit_entry_from_bytes(leaf)
        if entry.kind == AuditKind.RELEASE and entry.request_kind == "km_counts":
            releases.append(entry)
    assert [a.name for a in releases[-1].arrays] == ["n_risk", "n_event", "suppressed"]


def test_km__same_counts_as_without_suppression_where_shown(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    full = run_study(_study(KM), InProcessTransport(cohort.sites), tmp_path / "a", engine="t")
    sites = _copy(cohort, tmp_path / "copy")
    _set_policy(sites[0], "min_cell_count = 0", "min_cell_count = 40\naudit_sample_sets = false")
    cut = run_study(_study(KM), InProcessTransport(sites), tmp_path / "b", engine="t")
    a = (full.out / "km.tsv").read_text().splitlines()
    b = (cut.out / "km.tsv").read_text().splitlines()
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if "SUPPRESSED" not in y:
            assert x == y


def test_cox__requests_are_audited_and_the_rounds_converge(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    transport = InProcessTransport(cohort.sites)
    outcome = run_study(_study(COX), transport, tmp_path / "r", engine="in-process")
    steps = [o for _, o in transport.sent if o.request.kind == "cox_step"]
    rounds = outcome.summary["cox"]["rounds"]  # type: ignore[index]
    assert len(steps) == 3 * rounds and 3 <= rounds <= 10
    assert [sorted(o.inputs) for o in steps] == [["beta"]] * len(steps)
    prov = json.loads((tmp_path / "r" / "provenance.json").read_text())
    released = [r for r in prov["sites"][0]["releases"] if r["request"] == "cox_step"]
    assert len(released) == rounds
    assert [a["name"] for a in released[0]["arrays"]] == ["loglik", "grad", "hess"]
    assert [a["shape"] for a in released[0]["arrays"]] == [[1], [3], [3, 3]]
    assert all(r["receipt"]["audited"] for r in released)


def test_survival__a_site_that_does_not_allow_the_kind_refuses(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _copy(cohort, tmp_path)
    _set_policy(sites[2], '"cox", ', "")
    with pytest.raises(SiteFailure) as info:
        run_study(_study(COX), InProcessTransport(sites), tmp_path / "r", engine="in-process")
    assert info.value.site == "site-c" and info.value.reason_code == "ANALYSIS_NOT_ALLOWED"
    assert not (tmp_path / "r").exists()


def test_cox__a_site_with_too_few_events_refuses(cohort: SynthSummary, tmp_path: Path) -> None:
    sites = _copy(cohort, tmp_path)
    _set_policy(
        sites[0], "min_cell_count = 0", "min_cell_count = 100000\naudit_sample_sets = false"
    )
    with pytest.raises(SiteFailure) as info:
        run_study(_study(COX), InProcessTransport(sites), tmp_path / "r", engine="in-process")
    assert info.value.reason_code == "TOO_FEW_EVENTS"


def test_survival__bad_event_values_name_the_file_line_and_column(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _copy(cohort, tmp_path)
    pheno = sites[1] / "data" / "pheno.tsv"
    lines = pheno.read_text().splitlines()
    fields = lines[5].split("\t")
    fields[6] = "2"
    lines[5] = "\t".join(fields)
    pheno.write_text("\n".join(lines) + "\n")
    with pytest.raises(SiteFailure) as info:
        run_study(_study(KM), InProcessTransport(sites), tmp_path / "r", engine="in-process")
    message = str(info.value)
    assert "pheno.tsv:6" in message and "RFS_EVENT" in message and "not 0 or 1" in message


def test_survival__unknown_column_is_named(cohort: SynthSummary, tmp_path: Path) -> None:
    study = _study({**COX, "covariates": ["RSCORE", "STAGE"]})
    with pytest.raises(SiteFailure, match="STAGE"):
        run_study(study, InProcessTransport(cohort.sites), tmp_path / "r", engine="in-process")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"grid": []}, "grid"),
        ({"grid": [10, 5]}, "increasing"),
        ({"cuts": [], "levels": []}, "exactly one of cuts"),
        ({"group": "", "cuts": [1]}, "need group"),
        ({"time": ""}, "time"),
    ],
)
def test_km__bad_parameters_are_config_errors(change: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _study({**KM, **change})


def test_cox__bad_ties_and_covariates_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="ties"):
        _study({**COX, "ties": "exact"})
    with pytest.raises(ConfigError, match="distinct"):
        _study({**COX, "covariates": ["AGE", "AGE"]})
    assert _study({**COX, "ties": "breslow"}).analyses[0].params["ties"] == "breslow"


def test_cox__breslow_and_efron_fits_are_close_but_not_equal(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    efron = _study(COX)
    breslow = _study({**COX, "ties": "breslow"})
    a = run_study(efron, InProcessTransport(cohort.sites), tmp_path / "e", engine="t")
    b = run_study(breslow, InProcessTransport(cohort.sites), tmp_path / "b", engine="t")

    def coef(path: Path) -> np.ndarray:
        rows = [r.split("\t") for r in (path / "cox.tsv").read_text().splitlines()[1:]]
        return np.array([float(r[1]) for r in rows])

    ca, cb = coef(a.out), coef(b.out)
    assert not np.array_equal(ca, cb)
    np.testing.assert_allclose(ca, cb, rtol=0.05, atol=1e-3)


def test_km__a_group_withheld_from_the_start_leaves_no_log_rank_test(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _copy(cohort, tmp_path)
    _set_policy(sites[1], "min_cell_count = 0", "min_cell_count = 60\naudit_sample_sets = false")
    outcome = run_study(_study(KM), InProcessTransport(sites), tmp_path / "r", engine="t")
    rows = [r.split("\t") for r in (tmp_path / "r" / "logrank.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["RSCORE<18", "18<=RSCORE<31", "RSCORE>=31"]
    assert any(r[1:3] == ["SUPPRESSED", "SUPPRESSED"] for r in rows)
    assert all(r[3:] == ["NA", "NA", "NA", "NA"] for r in rows)
    assert outcome.summary["km"]["logrank p"] == "NA"  # type: ignore[index]


def test_km__a_policy_bound_on_the_grid_refuses_a_finer_grid(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    sites = _copy(cohort, tmp_path)
    policy = sites[0] / POLICY_FILE
    policy.write_text(policy.read_text() + "\n[policy.analysis.km]\nmax_grid = 5\n")
    with pytest.raises(SiteFailure) as info:
        run_study(_study(KM), InProcessTransport(sites), tmp_path / "r", engine="in-process")
    assert info.value.reason_code == "PARAMETER_OUT_OF_BOUNDS" and "grid" in str(info.value)


def test_km__a_site_that_coarsens_the_grid_gives_the_coarse_grid_curve(
    cohort: SynthSummary, tmp_path: Path
) -> None:
    """km_min_grid_step at one site: everyone's counts go on the common coarser grid."""
    from genofed.site_agent.requests.survival import coarse_points

    fine = [float(t) for t in range(30, 1830, 30)]  # monthly
    keep = coarse_points(np.asarray(fine), 100.0)
    coarse = [t for t, k in zip(fine, keep, strict=True) if k]
    assert 10 < len(coarse) < len(fine) and coarse[-1] == fine[-1]
    sites = _copy(cohort, tmp_path / "copy")
    _set_policy(sites[0], "min_cell_count = 0", "min_cell_count = 0\nkm_min_grid_step = 100")
    base = {"kind": "km", **COMMON, "group": "SEX", "levels": [1, 2]}
    merged = run_study(
        _study({**base, "grid": fine}), InProcessTransport(sites), tmp_path / "m", engine="t"
    )
    direct = run_study(
        _study({**base, "grid": coarse}),
        InProcessTransport(cohort.sites),
        tmp_path / "d",
        engine="t",
    )
    for name in ("km.tsv", "logrank.tsv"):
        assert (merged.out / name).read_text() == (direct.out / name).read_text(), name
    assert "of the study's" in str(merged.summary["km"]["grid points"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("extra", "named"),
    [({"CONST": "7"}, ["'CONST'"]), ({"AGE2": "AGE*2"}, ["'AGE'", "'AGE2'"])],
    ids=["constant", "collinear"],
)
def test_cox__constant_or_collinear_covariates_stop_naming_them(
    cohort: SynthSummary, tmp_path: Path, extra: dict[str, str], named: list[str]
) -> None:
    sites = _copy(cohort, tmp_path / "copy")
    ((column, rule),) = extra.items()
    for site in sites:
        path = site / "data" / "covar.tsv"
        header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
        age = header.index("AGE")
        for r in rows:
            r.append(str(2 * float(r[age])) if rule == "AGE*2" and r[age] != "NA" else "7")
        path.write_text("\n".join("\t".join(r) for r in [[*header, column], *rows]) + "\n")
    study = _study({"kind": "cox", **COMMON, "covariates": ["AGE", column, "SEX"]})
    with pytest.raises(InputError) as info:
        run_study(study, InProcessTransport(sites), tmp_path / "r", engine="t")
    message = str(info.value)
    assert all(n in message for n in named) and "cannot be fitted" in message
    assert "'SEX'" not in message
    assert not (tmp_path / "r").exists()
