"""``genofed.synth``: synthetic multi-site cohorts that are deterministic, consistent and real.

Cohorts here are tiny (120 samples × 300 variants, well under a second each).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bed_reader import open_bed

from genofed.common.errors import InputError
from genofed.site_agent.sitedir import load_site
from genofed.synth import SynthSummary, write_cohorts
from genofed.synth import cohort as cohort_module

SAMPLES = 120
VARIANTS = 300
SEED = 7


def _write(out: Path, **kwargs: object) -> SynthSummary:
    args: dict[str, object] = {"samples": SAMPLES, "variants": VARIANTS, "seed": SEED}
    args.update(kwargs)
    return write_cohorts(out, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    return _write(tmp_path_factory.mktemp("synth") / "cohort")


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes, except each site's ``state/`` (its audit key is new at every init)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "state" not in p.relative_to(root).parts[1:2]
    }


def _read_bed(prefix: Path) -> tuple[np.ndarray, list[str], list[str]]:
    with open_bed(prefix.with_suffix(".bed"), num_threads=1) as bed:
        return bed.read(dtype="int8"), list(bed.iid), list(bed.sid)


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def _truth(summary: SynthSummary) -> dict:
    return json.loads(summary.truth.read_text(encoding="utf-8"))


def test_write_cohorts__same_seed_gives_identical_files(
    tmp_path: Path, cohort: SynthSummary
) -> None:
    again = _write(tmp_path / "again")
    first, second = _files(cohort.out), _files(again.out)
    assert sorted(first) == sorted(second)
    assert "pooled/pooled.bed" in first and "site-a/site.toml" in first
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []
    assert again.causal_variants == cohort.causal_variants


def test_write_cohorts__chunk_size_changes_nothing(tmp_path: Path, cohort: SynthSummary) -> None:
    small_chunks = _write(tmp_path / "chunked", chunk=7)
    assert _files(small_chunks.out) == _files(cohort.out)


def test_write_cohorts__different_seeds_differ(tmp_path: Path, cohort: SynthSummary) -> None:
    other = _write(tmp_path / "other", seed=SEED + 1)
    assert (other.pooled / "pooled.bed").read_bytes() != (cohort.pooled / "pooled.bed").read_bytes()
    assert (other.pooled / "pooled.bim").read_bytes() != (cohort.pooled / "pooled.bim").read_bytes()
    assert (other.pooled / "pheno.tsv").read_bytes() != (cohort.pooled / "pheno.tsv").read_bytes()


def test_write_cohorts__shapes_and_counts(cohort: SynthSummary) -> None:
    assert (cohort.n_samples, cohort.n_variants, cohort.seed) == (SAMPLES, VARIANTS, SEED)
    assert [s.name for s in cohort.sites] == ["site-a", "site-b", "site-c"]
    assert cohort.pooled == cohort.out / "pooled"
    truth = _truth(cohort)
    sizes = []
    for site, entry in zip(cohort.sites, truth["sites"], strict=True):
        genotypes, iids, _ = _read_bed(site / "data" / "genotypes")
        assert genotypes.shape == (entry["n_samples"], VARIANTS)
        assert entry["populations"]["A"] + entry["populations"]["B"] == entry["n_samples"]
        assert all(iid.startswith(f"s{len(sizes) + 1}_") for iid in iids)
        sizes.append(entry["n_samples"])
    assert sum(sizes) == SAMPLES
    assert len(set(sizes)) == len(sizes), "sites should be of unequal size"

    bim = [line.split("\t") for line in (cohort.pooled / "pooled.bim").read_text().splitlines()]
    assert len(bim) == VARIANTS
    keys = [(int(chrom), int(pos)) for chrom, _, _, pos, _, _ in bim]
    assert keys == sorted(keys) and len(set(keys)) == VARIANTS and min(p for _, p in keys) >= 1
    assert len({chrom for chrom, _ in keys}) >= 2
    for chrom, vid, _, pos, a1, a2 in bim:
        assert {a1, a2} <= set("ACGT") and a1 != a2
        assert vid == f"{chrom}:{pos}:{a2}:{a1}"  # CHR:POS:REF:ALT with A1 = ALT
    assert set(cohort.causal_variants) <= {row[1] for row in bim}
    assert 10 <= len(cohort.causal_variants) <= 20
    assert [c["id"] for c in truth["causal"]] == list(cohort.causal_variants)


def test_write_cohorts__pooled_equals_concatenation_of_sites(cohort: SynthSummary) -> None:
    pooled, pooled_iids, pooled_sids = _read_bed(cohort.pooled / "pooled")
    parts = [_read_bed(site / "data" / "genotypes") for site in cohort.sites]
    np.testing.assert_array_equal(pooled, np.concatenate([g for g, _, _ in parts]))
    assert pooled_iids == [iid for _, iids, _ in parts for iid in iids]
    assert all(sids == pooled_sids for _, _, sids in parts)
    assert len(set(pooled_iids)) == SAMPLES
    for name in ("pheno.tsv", "covar.tsv"):
        header, rows = _table(cohort.pooled / name)
        site_tables = [_table(site / "data" / name) for site in cohort.sites]
        assert all(h == header for h, _ in site_tables)
        assert rows == [row for _, r in site_tables for row in r]
        assert [row[1] for row in rows] == pooled_iids


def test_write_cohorts__missing_calls_at_about_missing_rate(
    tmp_path: Path, cohort: SynthSummary
) -> None:
    genotypes, _, _ = _read_bed(cohort.pooled / "pooled")
    missing = int((genotypes == -127).sum())
    assert missing == _truth(cohort)["genome"]["missing_calls"]
    expected = 0.005 * SAMPLES * VARIANTS  # 180
    assert 0.6 * expected < missing < 1.4 * expected
    assert set(np.unique(genotypes).tolist()) == {-127, 0, 1, 2}

    complete = _write(tmp_path / "complete", missing_rate=0.0)
    genotypes, _, _ = _read_bed(complete.pooled / "pooled")
    assert not (genotypes == -127).any()


def test_write_cohorts__sites_are_stratified_by_ancestry(cohort: SynthSummary) -> None:
    sites = _truth(cohort)["sites"]
    assert sites[0]["populations"]["A"] > 2 * sites[0]["populations"]["B"]
    assert sites[-1]["populations"]["B"] > 2 * sites[-1]["populations"]["A"]

    a, _, _ = _read_bed(cohort.sites[0] / "data" / "genotypes")
    c, _, _ = _read_bed(cohort.sites[-1] / "data" / "genotypes")

    def freq(g: np.ndarray) -> np.ndarray:
        g = np.where(g < 0, np.nan, g.astype(np.float64))
        return np.nanmean(g, axis=0) / 2

    observed = np.mean((freq(a) - freq(c)) ** 2)
    # Null: the same individuals split at random into groups of the same sizes.
    both = np.concatenate([a, c])
    rng = np.random.default_rng(0)
    null = []
    for _ in range(50):
        order = rng.permutation(both.shape[0])
        x, y = both[order[: a.shape[0]]], both[order[a.shape[0] :]]
        null.append(np.mean((freq(x) - freq(y)) ** 2))
    assert observed > 1.5 * max(null)
    assert np.max(np.abs(freq(a) - freq(c))) > 0.15


def test_write_cohorts__phenotypes_and_covariates_present_with_some_missing(
    cohort: SynthSummary,
) -> None:
    header, rows = _table(cohort.pooled / "pheno.tsv")
    assert header == ["#FID", "IID", "QPHENO", "DISEASE", "RSCORE", "RFS_DAYS", "RFS_EVENT"]
    q = [row[2] for row in rows]
    d = [row[3] for row in rows]
    assert 1 <= q.count("NA") <= 5 and 1 <= d.count("NA") <= 5
    assert set(d) == {"1", "2", "NA"}
    cases = d.count("2") / (len(d) - d.count("NA"))
    assert 0.25 <= cases <= 0.35
    assert np.std([float(v) for v in q if v != "NA"]) > 0.5
    assert all(row[0] == row[1] for row in rows)

    header, rows = _table(cohort.pooled / "covar.tsv")
    assert header == ["#FID", "IID", "AGE", "SEX"]
    ages = [int(row[2]) for row in rows]
    assert min(ages) >= 30 and max(ages) <= 80 and len(set(ages)) > 10
    assert {row[3] for row in rows} == {"1", "2"}
    fam = (cohort.pooled / "pooled.fam").read_text().splitlines()
    assert [line.split()[4] for line in fam] == [row[3] for row in rows]


def test_write_cohorts__qpheno_follows_the_recorded_causal_effects(cohort: SynthSummary) -> None:
    genotypes, _, sids = _read_bed(cohort.pooled / "pooled")
    truth = _truth(cohort)
    columns = [sids.index(c["id"]) for c in truth["causal"]]
    effects = np.array([c["effect"] for c in truth["causal"]])
    x = genotypes[:, columns].astype(np.float64)
    x[x < 0] = np.nan
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    genetic = x @ effects
    _, rows = _table(cohort.pooled / "pheno.tsv")
    q = np.array([np.nan if row[2] == "NA" else float(row[2]) for row in rows])
    keep = ~np.isnan(q)
    assert np.corrcoef(genetic[keep], q[keep])[0, 1] > 0.3
    assert 0.2 < np.var(genetic) < 0.45  # rescaled to heritability 0.3


def test_write_cohorts__site_directories_are_initialised(cohort: SynthSummary) -> None:
    for site in cohort.sites:
        config = load_site(site)
        assert config.name == site.name
        assert config.genotypes == site / "data" / "genotypes.bed"
        assert config.phenotypes == site / "data" / "pheno.tsv"
        assert config.covariates == site / "data" / "covar.tsv"
        assert (site / "policy.toml").is_file()


@pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 is not installed")
def test_write_cohorts__plink2_reads_the_pooled_fileset(
    tmp_path: Path, cohort: SynthSummary
) -> None:
    result = subprocess.run(
        [
            "plink2",
            "--bfile",
            str(cohort.pooled / "pooled"),
            "--freq",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "pooled"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    afreq = (tmp_path / "pooled.afreq").read_text().splitlines()
    assert len(afreq) == VARIANTS + 1
    first = afreq[1].split("\t")
    bim_first = (cohort.pooled / "pooled.bim").read_text().splitlines()[0].split("\t")
    assert (first[2], first[3]) == (bim_first[5], bim_first[4])  # REF = A2, ALT = A1


def test_write_cohorts__refuses_a_non_empty_out(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty directory"):
        _write(out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_write_cohorts__accepts_an_empty_out(tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    summary = _write(out, sites=2)
    assert [p.name for p in summary.sites] == ["site-a", "site-b"]
    assert (out / "truth.json").is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sites": 0}, "sites must be"),
        ({"samples": 5}, "too few"),
        ({"variants": 0}, "variants must be"),
        ({"missing_rate": 0.7}, "missing_rate"),
        ({"seed": -1}, "seed"),
    ],
)
def test_write_cohorts__rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        _write(tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_cohorts__leaves_nothing_behind_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise InputError("site init failed on purpose")

    monkeypatch.setattr(cohort_module, "_init_site_dirs", fail)
    with pytest.raises(InputError, match="on purpose"):
        _write(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_write_cohorts__recurrence_outcome_is_censored_and_follows_the_score(
    cohort: SynthSummary,
) -> None:
    _, rows = _table(cohort.pooled / "pheno.tsv")
    score = np.array([np.nan if r[4] == "NA" else float(r[4]) for r in rows])
    days = np.array([int(r[5]) for r in rows])
    event = np.array([int(r[6]) for r in rows])
    assert 1 <= int(np.isnan(score).sum()) <= 5
    assert np.nanmin(score) >= 0 and np.nanmax(score) <= 100
    assert days.min() >= 1 and days.max() <= 3653
    assert set(event.tolist()) == {0, 1}
    recurrence = _truth(cohort)["phenotypes"]["recurrence"]
    assert recurrence["events"] == int(event.sum()) and recurrence["censored"] == len(rows) - int(
        event.sum()
    )
    # censoring: some follow-ups end before 10 years without an event
    assert ((event == 0) & (days < 3000)).any()
    # the hazard rises with the score: more events above the median score
    ok = ~np.isnan(score)
    high = score[ok] > np.median(score[ok])
    assert event[ok][high].mean() > event[ok][~high].mean()


def test_write_cohorts__pgen_format_holds_the_bed_cohort_as_plink2_writes_it(
    tmp_path: Path, cohort: SynthSummary
) -> None:
    """Same calls, same samples and variants; .pvar/.psam as plink2 --make-pgen writes them."""
    as_pgen = _write(tmp_path / "pgen", genotype_format="pgen")
    files = _files(as_pgen.out)
    assert "pooled/pooled.pgen" in files and "site-a/data/genotypes.pvar" in files
    assert not any(name.endswith((".bed", ".bim", ".fam")) for name in files)
    from genofed.site_agent.io.genotypes import open_genotypes

    for prefix, bed_prefix in [
        (as_pgen.pooled_prefix, cohort.pooled_prefix),
        *[
            (p / "data" / "genotypes", b / "data" / "genotypes")
            for p, b in zip(as_pgen.sites, cohort.sites, strict=True)
        ],
    ]:
        with open_genotypes(prefix) as pgen, open_genotypes(bed_prefix) as bed:
            assert type(pgen).__name__ == "PgenFile"
            for field in ("chrom", "pos", "id", "ref", "alt"):
                assert (
                    getattr(pgen.variants, field).tolist() == getattr(bed.variants, field).tolist()
                )
            for field in ("fid", "iid", "sex"):
                assert getattr(pgen.samples, field).tolist() == getattr(bed.samples, field).tolist()
            got = np.concatenate([c for _, c in pgen.iter_dosages()])
            want = np.concatenate([c for _, c in bed.iter_dosages()])
            np.testing.assert_array_equal(got, want)
    if shutil.which("plink2"):
        out = tmp_path / "p2"
        subprocess.run(
            ["plink2", "--bfile", str(cohort.pooled_prefix), "--make-pgen", "--out", str(out)],
            check=True,
            capture_output=True,
        )
        for ext in ("pvar", "psam"):
            ours = as_pgen.pooled_prefix.with_suffix(f".{ext}").read_text()
            assert ours == out.with_suffix(f".{ext}").read_text(), ext
    assert _files(_write(tmp_path / "again", genotype_format="pgen").out) == files
