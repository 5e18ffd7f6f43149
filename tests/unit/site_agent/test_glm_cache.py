"""The logistic glm genotype cache and the block kernel that reads it.

The cache must give back exactly what decoding the ``.bed`` gives (codes,
orientation, missing calls) for any subset of the plan, refuse requests it
was not made for, and be removed for other analyses; the kernel must give
the same sums from it as the float64 reference path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genofed.site_agent.requests.glm_cache import (
    CacheWriter,
    GenotypeCache,
    cache_dir,
    forget_others,
)
from genofed.site_agent.stats.glm import (
    LogisticKernel,
    logistic_chunk,
    logistic_from_codes,
    oriented,
    oriented_codes,
)


def _dosages(rng: np.random.Generator, v: int, n: int, miss: float) -> np.ndarray:
    d = rng.integers(0, 3, (v, n)).astype(np.int8)
    d[rng.random((v, n)) < miss] = -9
    return d


def _write(directory: Path, d: np.ndarray, flip: np.ndarray, index: np.ndarray, chunk: int):
    writer = CacheWriter(directory, index, flip, np.arange(d.shape[1]))
    for start in range(0, len(d), chunk):
        writer.add(*oriented_codes(d[start : start + chunk], flip[start : start + chunk]))
    writer.close()


def test_oriented_codes__equal_oriented_dosages_with_the_same_missing_calls() -> None:
    rng = np.random.default_rng(0)
    d = _dosages(rng, 30, 50, 0.1)
    flip = rng.random(30) < 0.5
    codes, rows, cols = oriented_codes(d, flip)
    g, missing = oriented(d, flip)
    np.testing.assert_array_equal(codes.astype(np.float64), g)
    np.testing.assert_array_equal(np.flatnonzero(missing), rows * 50 + cols)
    assert (np.diff(rows) >= 0).all()


def test_cache__any_subset_of_rows_reads_back_as_decoded(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    v, n = 200, 37
    d = _dosages(rng, v, n, 0.05)
    flip = rng.random(v) < 0.3
    index = rng.permutation(1000)[:v]  # .bed rows in plan order, not sorted
    directory = cache_dir(tmp_path, "a" * 64, "gwas")
    _write(directory, d, flip, index, chunk=64)
    cache = GenotypeCache.open(directory, np.arange(n))
    assert cache is not None
    pick = np.sort(rng.choice(v, 90, replace=False))
    pick = np.concatenate([np.arange(10, 60), pick])  # a run and scattered rows
    pick = np.unique(pick)
    rows = cache.rows_for(index[pick], flip[pick])
    assert rows is not None
    np.testing.assert_array_equal(rows, pick)
    for chunk in (7, 1024):
        got = list(cache.chunks(rows, chunk))
        codes = np.concatenate([c for _, c, _, _ in got])
        want, want_rows, want_cols = oriented_codes(d[pick], flip[pick])
        np.testing.assert_array_equal(codes, want)
        miss = np.concatenate([r + s for s, _, r, _ in got])
        cols = np.concatenate([c for _, _, _, c in got])
        np.testing.assert_array_equal(miss, want_rows)
        np.testing.assert_array_equal(cols, want_cols)


def test_cache__refuses_requests_it_was_not_made_for(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    d = _dosages(rng, 20, 10, 0.0)
    flip = np.zeros(20, dtype=bool)
    index = np.arange(20) * 2
    directory = cache_dir(tmp_path, "b" * 64, "gwas")
    _write(directory, d, flip, index, chunk=8)
    assert GenotypeCache.open(directory, np.arange(1, 11)) is None  # other samples
    cache = GenotypeCache.open(directory, np.arange(10))
    assert cache is not None
    assert cache.rows_for(np.array([0, 3]), np.array([False, False])) is None  # not in the plan
    assert cache.rows_for(np.array([0, 2]), np.array([False, True])) is None  # other flip
    (directory / "genotypes.i8").write_bytes(b"\0" * 10)
    assert GenotypeCache.open(directory, np.arange(10)) is None  # truncated


@pytest.mark.parametrize("pattern", ["every_other", "runs", "all", "none_missing"])
def test_cache__scattered_and_run_reads_equal_the_decoded_rows(
    tmp_path: Path, pattern: str
) -> None:
    rng = np.random.default_rng(5)
    v, n = 300, 41
    d = _dosages(rng, v, n, 0.0 if pattern == "none_missing" else 0.08)
    flip = rng.random(v) < 0.5
    index = np.arange(v) + 5
    directory = cache_dir(tmp_path, "e" * 64, "gwas")
    _write(directory, d, flip, index, chunk=50)
    cache = GenotypeCache.open(directory, np.arange(n))
    assert cache is not None
    pick = {
        "every_other": np.arange(0, v, 2),  # > SCATTERED runs per chunk: the memory-map path
        "runs": np.concatenate([np.arange(3, 40), np.arange(100, 101), np.arange(250, 300)]),
        "all": np.arange(v),
        "none_missing": np.arange(1, v, 3),
    }[pattern]
    rows = cache.rows_for(index[pick], flip[pick])
    assert rows is not None
    want, want_rows, want_cols = oriented_codes(d[pick], flip[pick])
    for chunk in (1, 13, 4096):
        got = list(cache.chunks(rows, chunk))
        assert [s for s, *_ in got] == list(range(0, len(pick), chunk))
        np.testing.assert_array_equal(np.concatenate([c for _, c, _, _ in got]), want)
        np.testing.assert_array_equal(np.concatenate([r + s for s, _, r, _ in got]), want_rows)
        np.testing.assert_array_equal(np.concatenate([c for *_, c in got]), want_cols)
        assert all(c.dtype == np.intp and r.dtype == np.intp for _, _, r, c in got)


def test_cache__files_are_private_and_the_partial_directory_is_gone(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    d = _dosages(rng, 10, 8, 0.1)
    directory = cache_dir(tmp_path, "f" * 64, "gwas")
    _write(directory, d, np.zeros(10, dtype=bool), np.arange(10), chunk=4)
    files = sorted(p.name for p in directory.iterdir())
    assert "genotypes.i8" in files and "format" in files and "missing.npz" not in files
    assert all((directory / name).stat().st_mode & 0o777 == 0o600 for name in files)
    assert [p.name for p in directory.parent.iterdir()] == ["gwas"]


def test_cache__an_old_format_cache_is_ignored(tmp_path: Path) -> None:
    """A cache written by the previous format (plan.npz, missing.npz) is not read."""
    n, v = 6, 4
    directory = cache_dir(tmp_path, "g" * 64, "gwas")
    directory.mkdir(parents=True)
    np.savez(
        directory / "plan.npz",
        variant_index=np.arange(v),
        flip=np.zeros(v, dtype=bool),
        samples=np.arange(n),
    )
    np.savez(directory / "missing.npz", ptr=np.zeros(v + 1, np.int64), cols=np.zeros(0, np.int32))
    (directory / "genotypes.i8").write_bytes(b"\1" * (n * v))
    assert GenotypeCache.open(directory, np.arange(n)) is None
    _write(
        directory, _dosages(np.random.default_rng(7), v, n, 0.2), np.zeros(v, bool), np.arange(v), 2
    )
    assert GenotypeCache.open(directory, np.arange(n)) is not None
    (directory / "format").write_bytes(b"genofed glm genotype cache 1\n")  # another version
    assert GenotypeCache.open(directory, np.arange(n)) is None


@pytest.mark.parametrize(
    "name", ["genotypes.i8", "miss_ptr.i64", "miss_cols.i32", "samples.npy", "format"]
)
def test_cache__a_truncated_or_missing_file_is_ignored(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(8)
    v, n = 30, 9
    directory = cache_dir(tmp_path, "h" * 64, "gwas")
    _write(directory, _dosages(rng, v, n, 0.2), np.zeros(v, bool), np.arange(v), chunk=7)
    assert GenotypeCache.open(directory, np.arange(n)) is not None
    path = directory / name
    path.write_bytes(path.read_bytes()[:-3])
    assert GenotypeCache.open(directory, np.arange(n)) is None
    path.unlink()
    assert GenotypeCache.open(directory, np.arange(n)) is None


def test_cache_writer__a_failed_request_leaves_no_cache(tmp_path: Path) -> None:
    directory = cache_dir(tmp_path, "i" * 64, "gwas")
    writer = CacheWriter.start(directory, np.arange(3), np.zeros(3, bool), np.arange(4))
    assert writer is not None
    writer.add(*oriented_codes(np.zeros((3, 4), np.int8), np.zeros(3, bool)))
    writer.abort()
    assert not directory.exists()
    assert not list(directory.parent.iterdir())


def test_forget_others__keeps_only_the_current_analysis(tmp_path: Path) -> None:
    keep = cache_dir(tmp_path, "c" * 64, "gwas_d")
    gone = [cache_dir(tmp_path, "c" * 64, "gwas_q"), cache_dir(tmp_path, "d" * 64, "gwas_d")]
    for directory in (keep, *gone):
        directory.mkdir(parents=True)
        (directory / "genotypes.i8").write_bytes(b"x")
    forget_others(tmp_path, "c" * 64, "gwas_d")
    assert (keep / "genotypes.i8").exists()
    assert not any(d.exists() for d in gone)
    assert not (tmp_path / "state" / "glm" / ("d" * 64)).exists()


@pytest.mark.parametrize("newton_float32", [False, True])
def test_logistic_from_codes__equals_the_float64_reference(newton_float32: bool) -> None:
    rng = np.random.default_rng(3)
    v, n, k = 70, 300, 2
    d = _dosages(rng, v, n, 0.03)
    flip = rng.random(v) < 0.5
    cov = np.column_stack([rng.normal(60, 10, n), rng.integers(1, 3, n)])
    y = (rng.random(n) < 0.4).astype(np.float64)
    beta = rng.normal(scale=0.05, size=(v, k + 2))
    beta[:3, 1] = 900.0  # exp overflows: mu is 0 or 1 there, as expit's
    firth = rng.random(v) < 0.2
    g, missing = oriented(d, flip)
    want = logistic_chunk(g, missing, cov, y, beta, firth, loglik_rows=firth)
    kernel = LogisticKernel(cov, y, firth=True, newton_float32=newton_float32)
    got = logistic_from_codes(kernel, *oriented_codes(d, flip), beta, firth, firth)
    rtol = 1e-5 if newton_float32 else 1e-12
    np.testing.assert_allclose(got.grad, want.grad, rtol=rtol, atol=rtol * np.abs(want.grad).max())
    np.testing.assert_allclose(got.hess, want.hess, rtol=rtol, atol=rtol * np.abs(want.hess).max())
    np.testing.assert_allclose(got.loglik, want.loglik, rtol=1e-12)  # Firth rows: float64
    np.testing.assert_allclose(got.third, want.third, rtol=1e-12, atol=1e-12)
    full = logistic_chunk(g, missing, cov, y, beta, firth)
    np.testing.assert_allclose(want.loglik, full.loglik[firth], rtol=1e-14)


def test_logistic_study__same_tables_with_and_without_the_cache(tmp_path: Path) -> None:
    from genofed.common.study import study_from_mapping
    from genofed.coordinator.runner import run_study
    from genofed.synth import write_cohorts
    from tests.harness import InProcessTransport

    cohort = write_cohorts(
        tmp_path / "cohorts", sites=2, samples=300, variants=150, seed=4, missing_rate=0.03
    )
    sites = list(cohort.sites)
    analysis = {"kind": "glm", "id": "gwas_d", "phenotype": "DISEASE", "covariates": ["AGE"]}
    study = study_from_mapping(
        {"study": {"name": "cache"}, "analysis": [analysis]}, path=Path("<t>")
    )
    table = "gwas.DISEASE.glm.logistic.hybrid"
    run_study(study, InProcessTransport(sites), tmp_path / "cached", engine="test")
    cached = [cache_dir(s, study.sha256, "gwas_d") / "genotypes.i8" for s in sites]
    assert all(path.is_file() for path in cached)
    for site in sites:  # a file where the cache directory would go: no cache can be written
        root = site / "state" / "glm"
        for path in sorted(root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        root.rmdir()
        root.write_text("not a directory")
    run_study(study, InProcessTransport(sites), tmp_path / "decoded", engine="test")
    assert (tmp_path / "cached" / table).read_text() == (tmp_path / "decoded" / table).read_text()
