"""Odd ``.bim`` files: what plink2 does with them, and that GenoFed does the same or refuses.

plink2 v2.00a3.5 on this machine (pinned here, so that a different plink2 shows up):

* a negative position: the variant is skipped ("2 out of 3 variants loaded");
* position 0: kept;
* alleles ``N``, ``AT``, lower case, ``<DEL>``, ``*``, ``.``, ``I``/``D``: kept as
  written; PLINK 1's missing allele ``0`` is written ``.``;
* a UTF-8 byte-order mark before the first line: refused ("Invalid chromosome
  code" with the mark in the code).

GenoFed keeps what plink2 keeps (the count tables of a federated study over
sites with odd alleles equal plink2's on the pooled fileset byte for byte) and
refuses, naming the site's file and line, what plink2 skips or refuses.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from genofed.common.errors import SiteFailure
from genofed.common.study import study_from_mapping
from genofed.coordinator.runner import run_study
from genofed.synth import SynthSummary, write_cohorts
from tests.harness import InProcessTransport

FAM = "".join(f"F{i} I{i} 0 0 1 -9\n" for i in range(4))
#: one byte per variant: the 4 samples' calls 00, 01, 10, 11 (hom A1, missing, het, hom A2)
BED_ROW = bytes([0b11100100])
#: (line of the .bim, A1, A2 or None to keep it)
ODD_ALLELES = [
    (0, "0", None),
    (1, "N", None),
    (2, "AT", None),
    (3, "a", "g"),
    (4, "<DEL>", None),
    (5, "*", None),
    (6, ".", None),
    (7, "I", "D"),
]
TABLES = [("freq.afreq", "afreq"), ("missing.vmiss", "vmiss"), ("geno.gcount", "gcount")]


def _fileset(directory: Path, bim_lines: list[str], *, bom: bool = False) -> Path:
    prefix = directory / "odd"
    (directory / "odd.fam").write_text(FAM)
    text = "".join(line + "\n" for line in bim_lines)
    (directory / "odd.bim").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    (directory / "odd.bed").write_bytes(b"\x6c\x1b\x01" + BED_ROW * len(bim_lines))
    return prefix


def _plink2_freq(plink2: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(plink2), "--bfile", str(prefix), "--freq", "--threads", "1", "--out", str(prefix)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_plink2__skips_a_negative_position_keeps_zero_and_refuses_a_byte_order_mark(
    plink2: Path, tmp_path: Path
) -> None:
    (tmp_path / "neg").mkdir()
    neg = _fileset(tmp_path / "neg", ["1 v1 0 100 A G", "1 v2 0 -5 A G", "1 v3 0 0 A G"])
    run = _plink2_freq(plink2, neg)
    assert run.returncode == 0 and "2 out of 3 variants loaded" in run.stdout
    ids = [line.split("\t")[1] for line in Path(f"{neg}.afreq").read_text().splitlines()[1:]]
    assert ids == ["v1", "v3"]
    (tmp_path / "bom").mkdir()
    bom = _fileset(tmp_path / "bom", ["1 v1 0 100 A G"], bom=True)
    run = _plink2_freq(plink2, bom)
    assert run.returncode != 0 and "Invalid chromosome code '\ufeff1'" in run.stdout + run.stderr


def test_plink2__keeps_odd_alleles_and_writes_plink1s_missing_allele_as_a_dot(
    plink2: Path, tmp_path: Path
) -> None:
    lines = [f"1 v{i} 0 {100 * (i + 1)} {a1} {a2 or 'G'}" for i, a1, a2 in ODD_ALLELES]
    prefix = _fileset(tmp_path, lines)
    assert _plink2_freq(plink2, prefix).returncode == 0
    rows = [line.split("\t") for line in Path(f"{prefix}.afreq").read_text().splitlines()[1:]]
    assert [(r[2], r[3]) for r in rows] == [
        ("G", "."),
        ("G", "N"),
        ("G", "AT"),
        ("g", "a"),
        ("G", "<DEL>"),
        ("G", "*"),
        ("G", "."),
        ("D", "I"),
    ]


@pytest.fixture(scope="module")
def odd_cohort(tmp_path_factory: pytest.TempPathFactory) -> SynthSummary:
    """300 samples at 3 sites; 8 variants' alleles rewritten alike in every .bim."""
    cohort = write_cohorts(
        tmp_path_factory.mktemp("odd-bim") / "cohorts", sites=3, samples=300, variants=30, seed=3
    )
    for bim in [s / "data" / "genotypes.bim" for s in cohort.sites] + [
        cohort.pooled / "pooled.bim"
    ]:
        lines = bim.read_text().splitlines()
        for i, a1, a2 in ODD_ALLELES:
            fields = lines[i].split("\t")
            fields[4] = a1
            fields[5] = a2 or fields[5]
            lines[i] = "\t".join(fields)
        bim.write_text("\n".join(lines) + "\n")
    return cohort


def test_count_study_over_odd_alleles__tables_equal_plink2_byte_for_byte(
    odd_cohort: SynthSummary, plink2: Path, tmp_path: Path
) -> None:
    study = study_from_mapping(
        {
            "study": {"name": "odd"},
            "analysis": [{"kind": "freq"}, {"kind": "missing"}, {"kind": "gcount"}],
        },
        path=Path("<test>"),
    )
    outcome = run_study(study, InProcessTransport(odd_cohort.sites), tmp_path / "r", engine="t")
    ref = tmp_path / "p2"
    subprocess.run(
        [
            str(plink2),
            "--bfile",
            str(odd_cohort.pooled_prefix),
            "--freq",
            "--missing",
            "variant-only",
            "--geno-counts",
            "--threads",
            "1",
            "--out",
            str(ref),
        ],
        check=True,
        capture_output=True,
    )
    for ours, ext in TABLES:
        assert (outcome.out / ours).read_bytes() == Path(f"{ref}.{ext}").read_bytes(), ours
    alt = [line.split("\t")[3] for line in (outcome.out / "freq.afreq").read_text().splitlines()]
    assert alt[1:9] == [".", "N", "AT", "a", "<DEL>", "*", ".", "I"]


@pytest.mark.parametrize("case", ["negative position", "byte-order mark"])
def test_a_site_bim_that_plink2_skips_or_refuses__fails_the_study_naming_file_and_line(
    odd_cohort: SynthSummary, tmp_path: Path, case: str
) -> None:
    sites = []
    for site in odd_cohort.sites:
        shutil.copytree(site, tmp_path / site.name)
        sites.append(tmp_path / site.name)
    bim = sites[1] / "data" / "genotypes.bim"
    text = bim.read_text()
    if case == "negative position":
        lines = text.splitlines()
        fields = lines[11].split("\t")
        fields[3] = "-" + fields[3]
        lines[11] = "\t".join(fields)
        bim.write_text("\n".join(lines) + "\n")
        where, what = f"{bim}:12:", "negative position"
    else:
        bim.write_bytes(b"\xef\xbb\xbf" + text.encode())
        where, what = f"{bim}:1:", "byte-order mark"
    study = study_from_mapping(
        {"study": {"name": "odd"}, "analysis": [{"kind": "freq"}]}, path=Path("<test>")
    )
    with pytest.raises(SiteFailure) as info:
        run_study(study, InProcessTransport(sites), tmp_path / "r", engine="t")
    assert info.value.reason_code == "INPUTERROR"
    assert where in str(info.value) and what in str(info.value)
    assert not (tmp_path / "r").exists()  # nothing that looks complete
