"""The PLINK 2 reader (.pgen/.pvar/.psam), format detection, and their errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pgenlib
import pytest

from genofed.common.errors import InputError
from genofed.site_agent.io.genotypes import detect_format, genotype_files, open_genotypes
from genofed.site_agent.io.pgen import PgenFile, read_pvar
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.sitedir import init_site, inspect_site, load_site
from genofed.site_agent.snapshot import serving_config
from tests.unit.site_agent.test_plink import write_fileset

N_SAMPLES, N_VARIANTS = 7, 11

PVAR = (
    "##fileformat=PVARv1.0\n"
    "##contig=<ID=1,length=249250621>\n"
    "#CHROM\tID\tQUAL\tPOS\tALT\tREF\tINFO\n"
    + "".join(
        f"{1 if i < 9 else 2}\trs{i}\t.\t{100 + i}\t{'A' if i else 'AT'}\tG\tDP=3\n"
        for i in range(N_VARIANTS)
    )
)
SEX_CODES = ["M", "f", "NA", "2", "1", "0", "x"]  # as plink2: 1 2 0 2 1 0 0
PSAM = "#FID\tIID\tPAT\tMAT\tSEX\tPHENO1\n" + "".join(
    f"f{i}\ts{i}\t0\t0\t{SEX_CODES[i]}\t1\n" for i in range(N_SAMPLES)
)


def write_pgen(
    directory: Path,
    pvar: str = PVAR,
    psam: str = PSAM,
    *,
    n_samples: int = N_SAMPLES,
    n_variants: int = N_VARIANTS,
    dosages: bool = False,
    seed: int = 0,
) -> tuple[Path, np.ndarray]:
    """``cohort.pgen/.pvar/.psam``; returns the .pgen path and the hard calls written."""
    rng = np.random.default_rng(seed)
    calls = rng.integers(0, 3, size=(n_variants, n_samples)).astype(np.int8)
    calls[rng.random(calls.shape) < 0.2] = -9
    pgen = directory / "cohort.pgen"
    if dosages:
        writer = pgenlib.PgenWriter(
            bytes(pgen), n_samples, n_variants, nonref_flags=False, dosage_present=True
        )
        # imputed-like: 0.1 away from the call (a whole-number dosage is stored as a hard call)
        imputed = np.where(calls < 0, -9, np.abs(calls - 0.1))
        writer.append_dosages_batch(imputed.astype(np.float32))
    else:
        writer = pgenlib.PgenWriter(bytes(pgen), n_samples, n_variants, nonref_flags=False)
        writer.append_biallelic_batch(calls)
    writer.close()
    pgen.with_suffix(".pvar").write_text(pvar)
    pgen.with_suffix(".psam").write_text(psam)
    return pgen, calls


def test_pgen__variants_samples_and_chunks_as_written(tmp_path: Path) -> None:
    pgen, calls = write_pgen(tmp_path)
    with PgenFile(pgen) as f:
        assert (f.n_samples, f.n_variants, f.has_dosages) == (N_SAMPLES, N_VARIANTS, False)
        v = f.variants
        assert v.id.tolist() == [f"rs{i}" for i in range(N_VARIANTS)]
        assert v.pos.tolist() == list(range(100, 100 + N_VARIANTS))
        assert v.chrom.tolist() == ["1"] * 9 + ["2", "2"]
        assert v.ref.tolist() == ["G"] * N_VARIANTS
        assert v.alt.tolist() == ["AT"] + ["A"] * (N_VARIANTS - 1)
        assert f.samples.fid.tolist() == [f"f{i}" for i in range(N_SAMPLES)]
        assert f.samples.sex.tolist() == [1, 2, 0, 2, 1, 0, 0]  # M f NA 2 1 0 x
        got = np.concatenate([c for _, c in f.iter_dosages(chunk_variants=3)])
        np.testing.assert_array_equal(got, calls)
        idx = np.array([10, 2, 5])
        sub = np.array([1, 4])
        (start, part), *rest = f.iter_dosages(idx, sample_idx=sub, chunk_variants=8)
        assert start == 0 and not rest
        np.testing.assert_array_equal(part, calls[idx][:, sub])


def test_pgen__iid_only_psam_gives_fid_0_and_headerless_files_are_bim_and_fam_order(
    tmp_path: Path,
) -> None:
    psam = "#IID\tSEX\n" + "".join(f"s{i}\t1\n" for i in range(N_SAMPLES))
    pgen, _ = write_pgen(tmp_path, psam=psam)
    assert PgenFile(pgen).samples.fid.tolist() == ["0"] * N_SAMPLES
    bim_order = "".join(f"1\trs{i}\t0\t{5 + i}\tC\tT\n" for i in range(N_VARIANTS))
    fam = "".join(f"f{i} s{i} 0 0 2 -9\n" for i in range(N_SAMPLES))
    pgen, _ = write_pgen(tmp_path, pvar=bim_order, psam=fam)
    with PgenFile(pgen) as f:
        assert f.variants.pos.tolist() == list(range(5, 5 + N_VARIANTS))
        assert (f.variants.ref[0], f.variants.alt[0]) == ("T", "C")
        assert f.samples.sex.tolist() == [2] * N_SAMPLES


def _error(tmp_path: Path, **files: str) -> InputError:
    pgen, _ = write_pgen(tmp_path, **files)
    with pytest.raises(InputError) as err:
        PgenFile(pgen).variants  # noqa: B018
    return err.value


def test_pvar_errors__name_file_line_and_fix(tmp_path: Path) -> None:
    lines = PVAR.splitlines(keepends=True)
    bad_pos = "".join([*lines[:6], lines[6].replace("\t103\t", "\t1e3\t"), *lines[7:]])
    err = _error(tmp_path, pvar=bad_pos)
    assert err.path is not None and err.path.endswith("cohort.pvar") and err.line == 7
    assert "POS is '1e3'" in str(err) and err.hint
    short = "".join([*lines[:8], "1\trs5\t.\t105\tA\tG\n", *lines[9:]])
    err = _error(tmp_path, pvar=short)
    assert err.line == 9 and "expected 7 columns" in str(err) and "found 6" in str(err)
    multi = PVAR.replace("\t107\tA\t", "\t107\tA,T,A\t")
    err = _error(tmp_path, pvar=multi)
    assert err.line == 11 and "ALT A is listed twice" in str(err) and "cannot tell" in str(err)
    err = _error(tmp_path, pvar=PVAR.replace("\t107\tA\t", "\t107\tA,G\t"))
    assert err.line == 11 and "ALT G is also the REF" in str(err)
    no_ref = PVAR.replace("\tREF\t", "\tXREF\t")
    err = _error(tmp_path, pvar=no_ref)
    assert err.line == 3 and "lacks column(s) REF" in str(err)


def test_pvar_errors__line_numbers_hold_across_blocks(tmp_path: Path) -> None:
    lines = PVAR.splitlines(keepends=True)
    bad = "".join([*lines[:12], lines[12].replace("\t109\t", "\t-4\t"), *lines[13:]])
    path = tmp_path / "x.pvar"
    path.write_text(bad)
    with pytest.raises(InputError) as err:
        read_pvar(path, block_lines=2)
    assert err.value.line == 13
    good = tmp_path / "y.pvar"
    good.write_text(PVAR)
    assert read_pvar(good, block_lines=2).id.tolist() == read_pvar(good).id.tolist()


def test_psam_errors__duplicates_and_column_counts(tmp_path: Path) -> None:
    dup = PSAM.replace("f3\ts3\t", "f1\ts1\t")
    err = _error(tmp_path, psam=dup)
    assert err.line == 5 and "duplicate sample FID='f1' IID='s1' (lines 3 and 5)" in str(err)
    iid_dup = "#IID\tSEX\n" + "".join(f"s{min(i, 5)}\t1\n" for i in range(N_SAMPLES))
    err = _error(tmp_path, psam=iid_dup)
    assert err.line == 8 and "IID='s5'" in str(err)
    short = PSAM.replace("f2\ts2\t0\t0\t", "f2\ts2\t0\t")
    err = _error(tmp_path, psam=short)
    assert err.line == 4 and "expected 6 columns" in str(err)
    err = _error(tmp_path, psam=PSAM.replace("#FID\tIID", "#FID\tNAME"))
    assert err.line == 1 and "no IID column" in str(err)


def test_pgen_header_counts_must_match_pvar_and_psam(tmp_path: Path) -> None:
    err = _error(tmp_path, pvar=PVAR + "2\trs99\t.\t999\tA\tG\tDP=1\n")
    assert err.path is not None and err.path.endswith("cohort.pgen")
    assert "header says 11 variants, but cohort.pvar lists 12" in str(err)
    err = _error(tmp_path, psam="".join(PSAM.splitlines(keepends=True)[:-1]))
    assert "header says 7 samples, but cohort.psam lists 6" in str(err)


def test_pvar_zst_is_refused_with_how_to_decompress(tmp_path: Path) -> None:
    pgen, _ = write_pgen(tmp_path)
    pvar = pgen.with_suffix(".pvar")
    pvar.rename(tmp_path / "cohort.pvar.zst")
    with pytest.raises(InputError, match="zstd-compressed") as err:
        open_genotypes(tmp_path / "cohort")
    assert err.value.hint is not None and "--zst-decompress" in err.value.hint


def test_dosage_track_is_detected(tmp_path: Path) -> None:
    pgen, _ = write_pgen(tmp_path, dosages=True)
    assert PgenFile(pgen).has_dosages


def test_open_genotypes__prefix_or_any_member_and_content_decides(tmp_path: Path) -> None:
    pgen, _ = write_pgen(tmp_path)
    for given in ("cohort", "cohort.pgen", "cohort.pvar", "cohort.psam"):
        with open_genotypes(tmp_path / given) as f:
            assert isinstance(f, PgenFile) and f.path == pgen
    assert list(genotype_files(tmp_path / "cohort.psam")) == ["pgen", "pvar", "psam"]
    bed_dir = tmp_path / "b"
    bed_dir.mkdir()
    bed, _ = write_fileset(bed_dir)
    for given in ("cohort", "cohort.bim", "cohort.fam", "cohort.bed"):
        assert isinstance(open_genotypes(bed_dir / given), BedFile)
    # a prefix of both a .bed and a .pgen fileset is ambiguous
    (bed_dir / "cohort.pgen").write_bytes(pgen.read_bytes())
    with pytest.raises(InputError, match="several genotype filesets"):
        detect_format(bed_dir / "cohort")
    # a .pgen that holds a .bed
    (bed_dir / "cohort.pgen").write_bytes(bed.read_bytes())
    with pytest.raises(InputError, match=r"named as PLINK 2 \.pgen but holds PLINK 1 \.bed"):
        open_genotypes(bed_dir / "cohort.pgen")


def test_open_genotypes__vcf_and_bcf_recognised_and_read_by_their_reader(tmp_path: Path) -> None:
    vcf = tmp_path / "calls.vcf.gz"
    with gzip.open(vcf, "wt") as fh:
        fh.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    assert detect_format(vcf) == ("vcf", vcf)
    with pytest.raises(InputError) as err:  # the VCF reader's own message: no samples
        open_genotypes(vcf)
    assert "does not read" not in str(err.value) and str(vcf) in str(err.value)
    good = tmp_path / "good.vcf"
    good.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
        "1\t10\trs1\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\n"
    )
    with open_genotypes(good) as reader:
        assert (reader.n_samples, reader.n_variants) == (2, 1)
        ((_, calls),) = reader.iter_dosages()
        assert calls.tolist() == [[1, 2]]
    bcf = tmp_path / "calls.bcf"
    with gzip.open(bcf, "wb") as fh:
        fh.write(b"BCF\x02\x02" + b"\0" * 8)
    assert detect_format(bcf)[0] == "bcf"
    odd = tmp_path / "calls.dat"
    odd.write_bytes(b"\x6c\x1b\x10" + b"\0" * 20)
    with pytest.raises(InputError, match=r"has no known ending and holds PLINK 2 \.pgen"):
        detect_format(odd)


def test_site_on_pgen__init_counts_and_snapshot_copies_the_pgen_fileset(tmp_path: Path) -> None:
    pgen, _ = write_pgen(tmp_path, dosages=True)
    summary = init_site(tmp_path / "site", name="s", genotypes=tmp_path / "cohort.pvar")
    assert summary.config.genotypes == pgen
    assert summary.genotype_format == "PLINK 2 .pgen" and summary.has_dosages
    assert summary.chromosomes == (("1", 9), ("2", 2))
    assert summary.n_long_alleles == 1  # rs0's ALT is AT
    assert inspect_site(load_site(tmp_path / "site")).n_variants == N_VARIANTS
    frozen, status = serving_config(load_site(tmp_path / "site"), 5)
    copied = sorted(p.name for p in frozen.genotypes.parent.iterdir())
    assert copied == ["cohort.pgen", "cohort.psam", "cohort.pvar"]
    assert status.n_samples == N_SAMPLES
    with open_genotypes(frozen.genotypes) as f:
        assert f.variants.id.tolist() == [f"rs{i}" for i in range(N_VARIANTS)]


def test_site_with_dosages__says_so_in_its_facts_and_provenance(tmp_path: Path) -> None:
    from genofed.common.receipts import DOSAGES_FACT
    from genofed.common.study import study_from_mapping
    from genofed.coordinator.runner import run_study
    from genofed.site_agent.release import DOSAGES_HARD_CALLS
    from tests.harness import InProcessTransport

    n = 60
    psam = "#IID\tSEX\n" + "".join(f"s{i}\t{1 + i % 2}\n" for i in range(n))
    sites = []
    for k, dosages in enumerate((True, False)):
        folder = tmp_path / f"data{k}"
        folder.mkdir()
        write_pgen(folder, psam=psam.replace("\ts", f"\tk{k}s"), n_samples=n, dosages=dosages)
        summary = init_site(
            tmp_path / f"site{k}", name=f"site-{k}", genotypes=folder / "cohort", demo_policy=True
        )
        sites.append(summary.config.directory)
    study = study_from_mapping(
        {"study": {"name": "d"}, "analysis": [{"kind": "freq"}]}, path=Path("<t>")
    )
    outcome = run_study(study, InProcessTransport(sites), tmp_path / "r", engine="t")
    facts = {s.name: s.facts for s in outcome.sites}
    assert facts["site-0"][DOSAGES_FACT] == DOSAGES_HARD_CALLS
    assert DOSAGES_FACT not in facts["site-1"]
    provenance = (tmp_path / "r" / "provenance.json").read_text()
    assert DOSAGES_HARD_CALLS in provenance


def test_multi_allelic_pvar_line__split_per_alt_an_alt_never_stored_counts_zero(
    tmp_path: Path,
) -> None:
    """A .pvar line ``REF G, ALT A,C`` over a record pgenlib stores as biallelic (nobody
    carries C), as plink2 writes it: two variants, the second all 0 but where missing.

    A plink2-written multi-allelic .pgen is compared with plink2 and the VCF reader in
    ``tests/reference/test_vcf_multiallelic_vs_plink2.py``.
    """
    pvar = PVAR.replace("\t103\tA\tG", "\t103\tA,C\tG").replace("\t105\tA\t", "\t105\tA,T\t")
    pgen, calls = write_pgen(tmp_path, pvar=pvar)
    with PgenFile(pgen) as f:
        assert (f.n_records, f.n_variants) == (N_VARIANTS, N_VARIANTS + 2)
        assert (f.split_records, f.split_variants, f.max_alts) == (2, 4, 2)
        assert f.variants.alt.tolist()[3:7] == ["A", "C", "A", "A"]
        assert f.variants.id.tolist()[3:5] == ["rs3", "rs3"]
        got = np.concatenate([b for _, b in f.iter_dosages(chunk_variants=4)])
        line = np.array([0, 1, 2, 3, 3, 4, 5, 5, 6, 7, 8, 9, 10])
        alt1 = np.array([True] * 4 + [False, True, True, False] + [True] * 5)
        assert np.array_equal(got[alt1], calls[line[alt1]])
        assert np.array_equal(got[~alt1], np.where(calls[[3, 5]] < 0, -9, 0))
        order = np.array([12, 4, 3, 0, 7, 7])
        ((_, some),) = f.iter_dosages(order, sample_idx=np.array([1, 4]), chunk_variants=8)
        assert np.array_equal(some, got[order][:, [1, 4]])
