"""PGS Catalog scoring-file reader: format 2 header and columns, errors naming file and line."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from genofed.common.errors import ConfigError, InputError
from genofed.common.pgs_scoring import parse_scoring_file
from genofed.common.study import study_from_mapping

HEADER = (
    "###PGS CATALOG SCORING FILE\n#format_version=2.0\n#pgs_id=PGS000001\n#genome_build=GRCh37\n"
)
COLUMNS = "rsID\tchr_name\tchr_position\teffect_allele\tother_allele\teffect_weight\n"


def _file(*rows: str, header: str = HEADER, columns: str = COLUMNS) -> bytes:
    return (header + columns + "".join(r + "\n" for r in rows)).encode()


def test_parse__reads_header_rows_and_hash() -> None:
    data = _file("rs1\tchr1\t100\ta\tG\t0.5", "rs2\t2\t200\tT\tC\t-1e-3")
    s = parse_scoring_file(data, path="x.txt")
    assert (s.pgs_id, s.genome_build, len(s)) == ("PGS000001", "GRCh37", 2)
    assert s.chrom.tolist() == ["1", "2"] and s.pos.tolist() == [100, 200]
    assert s.effect_allele.tolist() == ["A", "T"] and s.other_allele.tolist() == ["G", "C"]
    np.testing.assert_array_equal(s.weight, [0.5, -1e-3])
    assert s.rsid.tolist() == ["rs1", "rs2"] and s.line.tolist() == [6, 7]
    assert s.sha256 == hashlib.sha256(data).hexdigest()


def test_parse__reads_gzip_and_harmonized_columns() -> None:
    cols = "hm_rsID\thm_chr\thm_pos\teffect_allele\tother_allele\teffect_weight\n"
    data = gzip.compress(_file("rs1\t3\t300\tC\tA\t0.1", columns=cols))
    s = parse_scoring_file(data)
    assert (s.chrom.tolist(), s.pos.tolist(), s.rsid.tolist()) == (["3"], [300], ["rs1"])


@pytest.mark.parametrize(
    ("data", "where", "words"),
    [
        (_file("rs1\t1\t100\tA\tG\t0.5", header="#pgs_id=X\n"), "f.txt:", "format_version"),
        (
            _file(
                "rs1\t1\t100\tA\t0.5",
                columns="rsID\tchr_name\tchr_position\teffect_allele\teffect_weight\n",
            ),
            "f.txt:5",
            "other_allele",
        ),
        (_file("rs1\t1\t100\tA\tG\tx"), "f.txt:6", "effect_weight"),
        (_file("rs1\t1\t-5\tA\tG\t1"), "f.txt:6", "position"),
        (_file("rs1\t1\t100\tA\tN\t1"), "f.txt:6", "other_allele"),
        (_file("rs1\t1\t100\tA\tG\t1", "rs1\t1\t100\tG\tA\t1"), "f.txt:7", "listed twice"),
        (_file("rs1\t1\t100\tA\tG"), "f.txt:6", "fields"),
        (_file(columns=COLUMNS.rstrip("\n") + "\tis_interaction\n"), "f.txt:5", "non-additive"),
        (_file(), "f.txt:", "no variants"),
    ],
)
def test_parse__bad_input_names_file_and_line(data: bytes, where: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        parse_scoring_file(data, path="f.txt")
    assert where in str(err.value) and words in str(err.value)


def _prs(**params: object) -> dict:
    base = {"kind": "prs", "scoring_file": "s.txt", "phenotype": "DISEASE"}
    return {"study": {"name": "s"}, "analysis": [{**base, **params}]}


def test_prs_params__defaults_filled_and_bad_values_refused() -> None:
    study = study_from_mapping(_prs(covariates=["AGE"]), path=Path("s.toml"))
    params = study.analyses[0].params
    assert params["n_bins"] == 12 and params["thresholds"] == 19 and params["ambiguous"] == "keep"
    for bad in (
        {"scoring_file": ""},
        {"ambiguous": "flip"},
        {"n_bins": 1},
        {"scoring_sha256": "abc"},
        {"covariates": ["DISEASE"]},
        {"model": "probit"},
    ):
        with pytest.raises(ConfigError):
            study_from_mapping(_prs(**bad), path=Path("s.toml"))
