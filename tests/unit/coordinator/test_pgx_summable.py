"""The pgx summable forms: their sum over sites pools as the per-site label pooling did.

The coordinator used to pool each site's ``pgx_counts`` tables by label
(diplotypes a site released, phenotype rows with withheld flags) and to add
the sites' regression sums one by one; now it receives only the sum of each
site's summable form (:mod:`genofed.common.wire.pgx`). These tests build
replies as the site does, for the shipped tables' genes, and check that the
two give the same tables and sums, that the forms' shapes depend only on the
tables and the request, and that ``run_pgx`` never asks for a site's arrays.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genofed.common.messages import Reply
from genofed.common.study import study_from_mapping
from genofed.common.wire.glm import multisets
from genofed.common.wire.pgx import (
    NOT_CALLED_REASONS,
    PGX_COUNTS_KIND,
    PGX_GLM_STATS_KIND,
    PGX_LOGISTIC_KIND,
    SUMMABLE_FORMS,
    diplotype_names,
)
from genofed.common.wire.records import NamedArrays
from genofed.common.wire.summable import secure_analysis_kinds, summed
from genofed.coordinator.combine.pgx import PooledTable, diplotype_table, pooled_table
from genofed.coordinator.combine.prs import pooled_gram
from genofed.coordinator.protocols.job import Answer, Pooled
from genofed.coordinator.protocols.pgx import run_pgx
from genofed.site_agent.privacy.suppression import small_cell_rows
from genofed.site_agent.requests.pgx_tables import gene_definition

GENES = ("TPMT", "VKORC1", "CYP2C19")
counts_form = SUMMABLE_FORMS[PGX_COUNTS_KIND]


def _site_reply(rng: np.random.Generator, min_cell: int) -> tuple[NamedArrays, dict[str, str]]:
    """A ``pgx_counts`` reply and facts as ``serve_pgx`` builds them, with random counts."""
    out: NamedArrays = {}
    facts: dict[str, str] = {}
    for gene in GENES:
        d = gene_definition(gene, "GRCh38")
        universe = diplotype_names(d.alleles)
        k = int(rng.integers(0, min(8, len(universe)) + 1))
        labels = sorted(rng.choice(universe, size=k, replace=False).tolist())
        counts = rng.integers(0, 15, size=(k, 3)).astype(np.int64)
        counts[counts.sum(axis=1) == 0, 0] = 1  # a called diplotype has a sample
        hidden = small_cell_rows(counts, min_cell)
        out[f"{gene}.allele"] = np.array(d.alleles, dtype=str)
        out[f"{gene}.diplotype"] = np.array(labels, dtype=str)[~hidden]
        out[f"{gene}.diplotype_counts"] = counts[~hidden]
        out[f"{gene}.diplotype_rows_withheld"] = np.array([hidden.sum()], dtype=np.int64)
        phenotypes = list(d.phenotypes())
        pc = rng.integers(0, 30, size=(len(phenotypes), 3)).astype(np.int64)
        ph = small_cell_rows(pc, min_cell)
        out[f"{gene}.phenotype"] = np.array(phenotypes, dtype=str)
        out[f"{gene}.phenotype_counts"] = np.where(ph[:, None], 0, pc)
        out[f"{gene}.phenotype_withheld"] = ph
        nc = rng.integers(0, 12, size=(3, 3)).astype(np.int64)
        nh = small_cell_rows(nc, min_cell)
        out[f"{gene}.not_called"] = np.where(nh[:, None], 0, nc)
        out[f"{gene}.not_called_withheld"] = nh
        facts[f"pgx_{gene}_alleles"] = json.dumps(list(d.alleles))
        facts[f"pgx_{gene}_phenotypes"] = json.dumps(phenotypes)
    return out, facts


def _by_label(
    labels: Sequence[np.ndarray], counts: Sequence[np.ndarray], marks: Sequence[np.ndarray]
) -> PooledTable:
    """The coordinator's former pooling: per-site rows summed by label, labels sorted."""
    names = sorted({str(x) for site in labels for x in site.tolist()})
    where = {name: i for i, name in enumerate(names)}
    total = np.zeros((len(names), 3), dtype=np.int64)
    marked = np.zeros(len(names), dtype=np.int64)
    for lab, cnt, mk in zip(labels, counts, marks, strict=True):
        for row, name in enumerate(lab.tolist()):
            total[where[str(name)]] += cnt[row]
            marked[where[str(name)]] += int(mk[row])
    return PooledTable(tuple(names), total, marked)


def _same(got: PooledTable, want: PooledTable) -> None:
    assert got.labels == want.labels
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.withheld_at, want.withheld_at)
    assert got.counts.dtype == np.int64 and got.withheld_at.dtype == np.int64


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_sites=st.integers(1, 5), min_cell=st.sampled_from([0, 5]))
def test_counts_form__sum_over_sites_pools_as_by_label(
    seed: int, n_sites: int, min_cell: int
) -> None:
    rng = np.random.default_rng(seed)
    replies = [_site_reply(rng, min_cell)[0] for _ in range(n_sites)]
    sites = [f"site-{i}" for i in range(n_sites)]
    total = summed([counts_form(r, {}) for r in replies], sites)
    for gene in GENES:
        d = gene_definition(gene, "GRCh38")
        dip = diplotype_table(
            diplotype_names(d.alleles),
            total[f"{gene}.diplotype_counts"],
            total[f"{gene}.diplotype_sites"],
        )
        reported = [r[f"{gene}.diplotype"] for r in replies]
        _same(
            dip,
            _by_label(
                reported,
                [r[f"{gene}.diplotype_counts"] for r in replies],
                [np.ones(len(x), dtype=np.int64) for x in reported],
            ),
        )
        for name, labels in (("phenotype", d.phenotypes()), ("not_called", NOT_CALLED_REASONS)):
            counts = "phenotype_counts" if name == "phenotype" else name
            got = pooled_table(
                list(labels), total[f"{gene}.{counts}"], total[f"{gene}.{name}_withheld"]
            )
            want = _by_label(
                [np.array(labels)] * n_sites,
                [r[f"{gene}.{counts}"] for r in replies],
                [r[f"{gene}.{name}_withheld"] for r in replies],
            )
            _same(got, want)
        withheld = sum(int(r[f"{gene}.diplotype_rows_withheld"][0]) for r in replies)
        assert total[f"{gene}.diplotype_rows_withheld"].tolist() == [withheld]


def test_counts_form__shapes_fixed_by_the_tables_not_the_data() -> None:
    rng = np.random.default_rng(1)
    layouts = set()
    for min_cell in (0, 10, 30):  # 30: every diplotype row withheld
        form = counts_form(_site_reply(rng, min_cell)[0], {})
        layouts.add(tuple(sorted((n, a.shape, a.dtype.str) for n, a in form.items())))
        assert all(np.isfinite(a).all() for a in form.values())
    assert len(layouts) == 1
    (layout,) = layouts
    shapes = dict((n, s) for n, s, _ in layout)
    a = len(gene_definition("TPMT", "GRCh38").alleles)
    assert shapes["TPMT.diplotype_counts"] == (a * (a + 1) // 2, 3)
    assert shapes["VKORC1.phenotype_counts"] == (3, 3)  # VKORC1's phenotype is its diplotype


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update({"TPMT.diplotype": np.array(["*1/*99"])}), "not diplotypes"),
        (lambda r: r.update({"TPMT.diplotype_counts": np.zeros((0, 3))}), "shape"),
        (lambda r: r.pop("VKORC1.not_called"), "VKORC1.not_called is missing"),
        (lambda r: r.update({"TPMT.phenotype_withheld": np.zeros(2, bool)}), "shape"),
    ],
)
def test_counts_form__malformed_reply_is_refused(
    edit: Callable[[NamedArrays], object], message: str
) -> None:
    reply = _site_reply(np.random.default_rng(2), 0)[0]
    reply["TPMT.diplotype"] = np.array(["*1/*1"])
    reply["TPMT.diplotype_counts"] = np.array([[3, 1, 0]])
    edit(reply)
    with pytest.raises(ValueError, match=message):
        counts_form(reply, {})


def test_regression_forms__sum_equals_site_by_site_sums_and_check_shapes() -> None:
    rng = np.random.default_rng(3)
    q, p, firth = 4, 4, np.array([True])
    glm = [
        {"gz": rng.normal(size=q), "gg": rng.normal(size=1), "zz": rng.normal(size=10)}
        for _ in range(3)
    ]
    sites = ["a", "b", "c"]
    total = summed([SUMMABLE_FORMS[PGX_GLM_STATS_KIND](r, {}) for r in glm], sites)
    want = pooled_gram([r["gz"] for r in glm], [r["gg"] for r in glm], [r["zz"] for r in glm], 2)
    got = pooled_gram([total["gz"]], [total["gg"]], [total["zz"]], 2)
    # summed() adds exactly (fixed point), the site-by-site float sum rounds at each step
    np.testing.assert_allclose(got.gram, want.gram, rtol=1e-14, atol=1e-14)
    inputs = {"beta": np.zeros((1, p)), "firth": firth}
    shapes = {
        "grad": (1, p),
        "hess": (1, len(multisets(p, 2))),
        "loglik": (1,),
        "third": (1, len(multisets(p, 3))),
    }
    logistic = [{n: rng.normal(size=s) for n, s in shapes.items()} for _ in sites]
    total = summed([SUMMABLE_FORMS[PGX_LOGISTIC_KIND](r, inputs) for r in logistic], sites)
    for n, s in shapes.items():
        before = np.zeros(s)
        for r in logistic:  # the protocol's former loop, in site order
            before += r[n]
        np.testing.assert_allclose(total[n], before, rtol=1e-14, atol=1e-15)
    no_firth = {"beta": np.zeros((1, p)), "firth": np.array([False])}
    with pytest.raises(ValueError, match="third must have shape"):
        SUMMABLE_FORMS[PGX_LOGISTIC_KIND](logistic[0], no_firth)
    with pytest.raises(ValueError, match="zz must have shape"):
        SUMMABLE_FORMS[PGX_GLM_STATS_KIND]({**glm[0], "zz": np.zeros(9)}, {})


def test_pgx__admitted_in_exact_mode() -> None:
    assert "pgx" in secure_analysis_kinds()


def test_run_pgx__tables_from_the_sums_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    made = [_site_reply(rng, 5) for _ in range(3)]
    sites = ["site-a", "site-b", "site-c"]
    asked: list[str] = []

    def ask(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> list[Answer]:
        raise AssertionError("run_pgx asked for the sites' own arrays")

    def ask_sum(kind: str, ident: str, inputs: Sequence[NamedArrays]) -> Pooled:
        asked.append(kind)
        total = summed(
            [SUMMABLE_FORMS[kind](a, x) for (a, _), x in zip(made, inputs, strict=True)], sites
        )
        return Pooled(
            [Reply(site=s, facts=f) for s, (_, f) in zip(sites, made, strict=True)], total, sites
        )

    study = study_from_mapping(
        {"study": {"name": "t"}, "analysis": [{"kind": "pgx", "genes": list(GENES)}]},
        path=Path("t"),
    )
    files, headline = run_pgx(study.analyses[0], sites, tmp_path, ask, ask_sum=ask_sum)
    assert asked == [PGX_COUNTS_KIND]
    assert files == ["pgx.diplotypes.tsv", "pgx.phenotypes.tsv", "pgx.summary.json"]
    lines = (tmp_path / "pgx.diplotypes.tsv").read_text().splitlines()[1:]
    for gene in GENES:
        reported = [a[f"{gene}.diplotype"] for a, _ in made]
        want = _by_label(
            reported,
            [a[f"{gene}.diplotype_counts"] for a, _ in made],
            [np.ones(len(x), dtype=np.int64) for x in reported],
        )
        rows = [r.split("\t") for r in lines if r.startswith(gene + "\t")]
        assert [r[1] for r in rows] == list(want.labels)
        assert [int(r[2]) for r in rows] == want.counts.sum(axis=1).tolist()
        assert [int(r[-1]) for r in rows] == want.withheld_at.tolist()
    summary = json.loads((tmp_path / "pgx.summary.json").read_text())
    withheld = sum(int(a["TPMT.diplotype_rows_withheld"][0]) for a, _ in made)
    assert summary["genes"]["TPMT"]["diplotype_rows_withheld"] == withheld
    assert headline["TPMT called"] == sum(int(a["TPMT.phenotype_counts"].sum()) for a, _ in made)
