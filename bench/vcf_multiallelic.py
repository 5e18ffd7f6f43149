"""Benchmark: reading multi-allelic VCF records split per ALT, against the pre-split file.

Writes a synthetic bgzipped VCF (``--samples`` x ``--records``; a third of
the records biallelic, a third with 2 ALTs, a third with 3, 2 % missing
calls), splits it with ``bcftools norm -m-`` (the bcftools pysam bundles),
and measures in child processes, each the wall time and peak RSS of its
whole process tree (:func:`measure.measure`):

* GenoFed's :class:`~genofed.site_agent.io.vcf.VcfFile` reading every
  variant (first pass, then ``iter_dosages`` in file order) of the unsplit
  file and of the split file (the same variants: the counts are checked
  equal);
* ``plink2 --vcf X --freq`` on the unsplit and on the split file;
* GenoFed reading the multi-allelic ``.pgen`` plink2 makes of the unsplit
  file (``--make-pgen``), and ``plink2 --pfile --freq`` on it.

    .venv/bin/python bench/vcf_multiallelic.py                    # 1,000 x 30,000 records
    .venv/bin/python bench/vcf_multiallelic.py --samples 200 --records 3000

Results go to ``bench/out/vcf_multiallelic.json`` and are printed, with the
machine's load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pysam
import pysam.bcftools
from measure import measure

HERE = Path(__file__).resolve().parent
READ = """
import sys, numpy as np
from genofed.site_agent.io.genotypes import open_genotypes
with open_genotypes(sys.argv[1]) as r:
    total = np.zeros(3, dtype=np.int64)
    for _, block in r.iter_dosages(chunk_variants=4096):
        total += [(block == g).sum() for g in (0, 1, 2)]
    print(r.n_variants, r.split_records, *total.tolist())
"""
BASES = ("A", "C", "G", "T")


def write_vcf(path: Path, n_samples: int, n_records: int, seed: int) -> None:
    """The synthetic VCF of the module docstring, written as plain text then bgzipped."""
    rng = np.random.default_rng(seed)
    codes = [f"{a}/{b}" for a in range(4) for b in range(4)]
    plain = path.with_suffix("")
    with plain.open("w") as fh:
        fh.write("##fileformat=VCFv4.2\n##contig=<ID=1>\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        names = "\t".join(f"s{i}" for i in range(n_samples))
        fh.write(f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{names}\n")
        for k in range(n_records):
            n_alts = 1 + k % 3
            ref = BASES[k % 4]
            alts = [b for b in BASES if b != ref][:n_alts]
            p = rng.dirichlet([4.0] + [1.0] * n_alts)
            a = rng.choice(n_alts + 1, size=(n_samples, 2), p=p)
            calls = np.array(codes, dtype=object)[a[:, 0] * 4 + a[:, 1]]
            calls[rng.random(n_samples) < 0.02] = "./."
            fields = f"1\t{10 * k + 1}\trs{k}\t{ref}\t{','.join(alts)}\t.\tPASS\t.\tGT\t"
            fh.write(fields + "\t".join(calls.tolist()) + "\n")
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=HERE / "out" / "vcf_multiallelic")
    args = parser.parse_args()
    plink2 = shutil.which("plink2")
    if plink2 is None:
        raise SystemExit("plink2 not found on PATH: apt-get install -y plink2")
    args.work.mkdir(parents=True, exist_ok=True)
    multi, split = args.work / "multi.vcf.gz", args.work / "split.vcf.gz"
    write_vcf(multi, args.samples, args.records, args.seed)
    pysam.bcftools.norm("-m-", "-Oz", "-o", str(split), str(multi), catch_stdout=False)
    load_before = os.getloadavg()
    report: dict[str, object] = {"samples": args.samples, "records": args.records}
    results: dict[str, dict[str, float]] = {}
    counts = {}
    env_python = [sys.executable, "-c", READ]
    for name, path in (("unsplit", multi), ("split", split)):
        out = subprocess.run([*env_python, str(path)], capture_output=True, text=True, check=True)
        counts[name] = out.stdout.split()
        results[f"genofed {name}"] = measure([*env_python, str(path)])
        results[f"plink2 {name}"] = measure(
            [
                plink2,
                "--vcf",
                str(path),
                "--freq",
                "--threads",
                "1",
                "--out",
                str(args.work / f"p2-{name}"),
            ]
        )
    pfile = args.work / "multi"
    subprocess.run(
        [plink2, "--vcf", str(multi), "--make-pgen", "--threads", "1", "--out", str(pfile)],
        check=True,
        capture_output=True,
    )
    pgen = pfile.with_suffix(".pgen")
    out = subprocess.run([*env_python, str(pgen)], capture_output=True, text=True, check=True)
    counts["pgen"] = out.stdout.split()
    results["genofed pgen"] = measure([*env_python, str(pgen)])
    results["plink2 pgen"] = measure(
        [plink2, "--pfile", str(pfile), "--freq", "--threads", "1", "--out", str(pfile) + "-p2"]
    )
    n_variants, n_split = int(counts["unsplit"][0]), int(counts["unsplit"][1])
    same = counts["unsplit"][2:] == counts["split"][2:] == counts["pgen"][2:]
    if not same or not n_variants == int(counts["split"][0]) == int(counts["pgen"][0]):
        raise SystemExit(f"the unsplit, split and pgen readings differ: {counts}")
    report.update(
        variants=n_variants,
        split_records=n_split,
        results=results,
        ratios={
            "genofed unsplit / split (wall)": results["genofed unsplit"]["wall_s"]
            / results["genofed split"]["wall_s"],
            "genofed unsplit / plink2 unsplit (wall)": results["genofed unsplit"]["wall_s"]
            / results["plink2 unsplit"]["wall_s"],
            "genofed unsplit / plink2 unsplit (peak)": results["genofed unsplit"]["peak_mib"]
            / results["plink2 unsplit"]["peak_mib"],
            "genofed pgen / plink2 pgen (wall)": results["genofed pgen"]["wall_s"]
            / results["plink2 pgen"]["wall_s"],
        },
        load_before=load_before,
        load_after=os.getloadavg(),
    )
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "vcf_multiallelic.json").write_text(json.dumps(report, indent=2))
    print(f"{args.samples:,} samples x {args.records:,} records -> {n_variants:,} variants")
    print(f"{'':18} {'wall s':>8} {'peak MiB':>9} {'variants/s':>11}")
    for name, r in results.items():
        rate = n_variants / r["wall_s"]
        print(f"{name:18} {r['wall_s']:8.2f} {r['peak_mib']:9.1f} {rate:11,.0f}")
    for name, value in report["ratios"].items():  # type: ignore[union-attr]
        print(f"{name}: {value:.2f}")
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
