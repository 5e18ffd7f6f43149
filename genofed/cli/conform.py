"""``genofed study conform``: a study on a federation against plink2 on the pooled data.

(``km`` and ``cox`` against lifelines on the pooled data, see :mod:`genofed.coordinator.conform`.)

A composition root (it wires the coordinator to the sites' own request
handler in-process, with the same Flower record codec as the engines, but no
Ray or gRPC). The synthetic cohort is :func:`genofed.synth.write_cohorts`'s:
three sites with the demo policy and ``pooled/`` holding the same individuals
for plink2. With ``--site DIR`` (sites holding test data) it runs on those
sites instead (PLINK 1 or PLINK 2 filesets) and pools their files for plink2
itself as one PLINK 1 fileset (:func:`pool_sites`:
the sites must list the same variants with the same alleles; their
individuals are concatenated, their phenotype and covariate values written
back exactly; written here because plink2 2.00a3.5 cannot merge samples —
``--pmerge-list`` says "non-concatenating merge is under development" — and
bed-reader would hold every site's genotypes in memory, where this copies each
variant's 2-bit codes block by block). Such a site answers as it would any study: its policy,
guard and audit log apply, so use test copies. The comparison is
:mod:`genofed.coordinator.conform`'s.

The study runs in ``plain`` release mode whatever its ``[privacy]`` says
(noise would make any comparison fail), on the analyses conform can check;
the others are listed as "not checked by conform".
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genofed.common.errors import InputError
from genofed.common.study import PrivacySpec, Study
from genofed.common.wire.records import (
    reply_from_recorddict,
    reply_to_recorddict,
    request_from_recorddict,
    request_to_recorddict,
)
from genofed.coordinator.conform import (
    CHECKED_KINDS,
    ConformRow,
    Runner,
    check_analyses,
    not_checked,
    write_conform_tsv,
)
from genofed.coordinator.runner import run_study
from genofed.coordinator.transport import Incoming, Outgoing
from genofed.site_agent.io.genotypes import GenotypeFile, genotype_files, open_genotypes
from genofed.site_agent.io.pheno import PhenoTable, read_pheno_table
from genofed.site_agent.io.plink import BedFile, Variants, fileset_paths, read_bim, read_fam
from genofed.site_agent.release import handle_request
from genofed.site_agent.sitedir import SiteConfig, load_site
from genofed.synth import write_cohorts

#: conform's synthetic federation: 3 sites, few enough samples to run in seconds.
CONFORM_SITES = 3
CONFORM_SAMPLES = 600
CONFORM_VARIANTS = 400
CONFORM_SEED = 11
#: more missing calls than the demo, so that most variants drop a few samples
CONFORM_MISSING_RATE = 0.03
CONFORM_TSV = "conform.tsv"
#: Variants per block when pooling sites' .bed files (memory: block x samples bytes).
POOL_BLOCK_VARIANTS = 4096


class InProcessTransport:
    """The coordinator's transport seam, served by each site's handler in this process.

    Node ``i + 1`` serves ``site_dirs[i]``; requests and replies go through
    the Flower record codec both ways, as on the real engines.
    """

    def __init__(self, site_dirs: Sequence[Path]) -> None:
        self.site_dirs = {i + 1: Path(d) for i, d in enumerate(site_dirs)}

    def nodes(self) -> list[int]:
        return sorted(self.site_dirs)

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        result = {}
        for node, o in outgoing.items():
            request, inputs = request_from_recorddict(request_to_recorddict(o.request, o.inputs))
            reply, arrays = handle_request(self.site_dirs[node], request, inputs)
            result[node] = Incoming(*reply_from_recorddict(reply_to_recorddict(reply, arrays)))
        return result


@dataclass(frozen=True)
class ConformOutcome:
    rows: tuple[ConformRow, ...]
    tsv: Path
    results: Path
    pooled: Path


def _codes(rows: bytes, n_variants: int, n_samples: int) -> np.ndarray:
    """(variants, samples) 2-bit .bed codes of ``n_variants`` packed rows."""
    packed = np.frombuffer(rows, dtype=np.uint8).reshape(n_variants, -1)
    codes = np.empty((n_variants, packed.shape[1] * 4), dtype=np.uint8)
    for k in range(4):
        codes[:, k::4] = (packed >> (2 * k)) & 3
    return codes[:, :n_samples]


def _packed(codes: np.ndarray) -> bytes:
    """``codes`` (variants, samples) packed into .bed rows (zero padding)."""
    v, n = codes.shape
    padded = np.zeros((v, (n + 3) // 4 * 4), dtype=np.uint8)
    padded[:, :n] = codes
    out = np.zeros((v, padded.shape[1] // 4), dtype=np.uint8)
    for k in range(4):
        out |= padded[:, k::4] << (2 * k)
    return out.tobytes()


def _pooled_table(tables: Sequence[PhenoTable], path: Path) -> None:
    """One table of every site's rows (values written back exactly), NA where missing."""
    names = list(tables[0].columns)
    for t in tables[1:]:
        if set(t.columns) != set(names) or t.has_fid != tables[0].has_fid:
            raise InputError(
                f"its columns ({', '.join(t.columns)}) differ from {tables[0].path}'s "
                f"({', '.join(names)})",
                path=t.path,
                hint="conform pools the sites' tables for plink2: give every site the same "
                "columns (and all or none an FID column)",
            )
    head = ["#FID", "IID"] if tables[0].has_fid else ["#IID"]
    lines = ["\t".join(head + names)]
    for t in tables:
        for i in range(len(t)):
            ids = [str(t.fid[i]), str(t.iid[i])] if t.has_fid else [str(t.iid[i])]
            values = [t.columns[c][i] for c in names]
            lines.append("\t".join(ids + ["NA" if v != v else format(v, ".17g") for v in values]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


#: plink2's 2-bit .bed code of each allele count (index: count 0, 1, 2; missing apart)
_BED_CODE = np.array([3, 2, 0], dtype=np.uint8)
_BED_MISSING = 1


def _bed_codes(dosages: np.ndarray) -> np.ndarray:
    """(variants, samples) .bed codes of A1 counts 0/1/2 and ``-9`` missing."""
    return np.where(dosages < 0, _BED_MISSING, _BED_CODE[np.clip(dosages, 0, 2)]).astype(np.uint8)


def _check_same_variants(configs: Sequence[SiteConfig], variants: Sequence[Variants]) -> None:
    first = variants[0]
    for config, other in zip(configs[1:], variants[1:], strict=True):
        same = len(other) == len(first) and all(
            np.array_equal(getattr(other, f), getattr(first, f))
            for f in ("chrom", "pos", "ref", "alt")
        )
        if same:
            continue
        n = min(len(other), len(first))
        differ = [
            i
            for i in range(n)
            if (other.chrom[i], other.pos[i], other.ref[i], other.alt[i])
            != (first.chrom[i], first.pos[i], first.ref[i], first.alt[i])
        ]
        if differ:
            k = differ[0] + 1
            where = f"line {k}" if _variant_file(config).suffix == ".bim" else f"variant {k}"
        else:
            where = f"{len(other)} vs {len(first)} variants"
        raise InputError(
            f"its variants differ from {_variant_file(configs[0])}'s ({where})",
            path=_variant_file(config),
            hint=f"conform --site pools the sites for plink2 and needs the same variants, "
            f"in the same order and with the same alleles, at every site (site "
            f"{config.name!r}); run it on test copies made from one fileset",
        )


def _variant_file(config: SiteConfig) -> Path:
    """The .bim or .pvar of a site (the second file of its fileset)."""
    files: list[Path] = list(genotype_files(config.genotypes).values())
    return files[1]


def pool_sites(site_dirs: Sequence[Path], out: Path) -> Path:
    """The sites' individuals in one PLINK 1 fileset and tables, for plink2; returns the folder.

    Writes ``pooled.bed/.bim/.fam``, ``pheno.tsv`` and ``covar.tsv`` in ``out``.
    The sites must list the same variants in the same order with the same
    alleles (test copies made for conform usually do), and no individual twice.
    Sites may hold PLINK 1 or PLINK 2 filesets; when all hold PLINK 1 the
    ``.bed`` rows are copied code by code, otherwise the hard calls are
    decoded and written as ``.bed`` codes (``POOL_BLOCK_VARIANTS`` at a time).
    """
    configs = [load_site(Path(d)) for d in site_dirs]
    with contextlib.ExitStack() as stack:
        # opening validates each fileset, naming the file and the fix
        readers = [stack.enter_context(open_genotypes(c.genotypes)) for c in configs]
        variants = [r.variants for r in readers]
        _check_same_variants(configs, variants)
        samples = [r.samples for r in readers]
        seen: dict[tuple[str, str], str] = {}
        for config, fam in zip(configs, samples, strict=True):
            for key in zip(fam.fid.tolist(), fam.iid.tolist(), strict=True):
                if key in seen:
                    raise InputError(
                        f"individual FID={key[0]!r} IID={key[1]!r} is at sites {seen[key]!r} "
                        f"and {config.name!r}",
                        path=config.genotypes,
                        hint="conform pools the sites: give each individual to one site only",
                    )
                seen[key] = config.name
        out.mkdir(parents=True, exist_ok=True)
        if all(isinstance(r, BedFile) for r in readers):
            _pool_beds(configs, out)
        else:
            _pool_decoded(readers, variants[0], out)
    for kind, name in (("phenotypes", "pheno.tsv"), ("covariates", "covar.tsv")):
        paths = [getattr(c, kind) for c in configs]
        if all(p is not None for p in paths):
            _pooled_table([read_pheno_table(p) for p in paths], out / name)
    return out


def _pool_beds(configs: Sequence[SiteConfig], out: Path) -> None:
    """PLINK 1 sites: the .bim copied, the .fam lines joined, the .bed codes copied."""
    prefixes = [fileset_paths(c.genotypes) for c in configs]
    (out / "pooled.bim").write_bytes(prefixes[0][1].read_bytes())
    (out / "pooled.fam").write_text(
        "".join(p[2].read_text(encoding="utf-8") for p in prefixes), encoding="utf-8"
    )
    fams = [read_fam(fam) for _, _, fam in prefixes]
    v = len(read_bim(prefixes[0][1]))
    sizes = [len(f) for f in fams]
    widths = [(n + 3) // 4 for n in sizes]
    with contextlib.ExitStack() as stack:
        dst = stack.enter_context(open(out / "pooled.bed", "wb"))
        dst.write(b"\x6c\x1b\x01")
        handles = [stack.enter_context(open(bed, "rb")) for bed, _, _ in prefixes]
        for h in handles:
            h.seek(3)
        for start in range(0, v, POOL_BLOCK_VARIANTS):
            m = min(POOL_BLOCK_VARIANTS, v - start)
            blocks = [
                _codes(h.read(m * w), m, n) for h, w, n in zip(handles, widths, sizes, strict=True)
            ]
            dst.write(_packed(np.concatenate(blocks, axis=1)))


def _pool_decoded(readers: Sequence[GenotypeFile], variants: Variants, out: Path) -> None:
    """Any sites: .bim from the variants, .fam from the samples, .bed from the hard calls."""
    bim = [
        f"{c}\t{i}\t0\t{p}\t{a}\t{r}\n"
        for c, i, p, a, r in zip(
            variants.chrom, variants.id, variants.pos, variants.alt, variants.ref, strict=True
        )
    ]
    (out / "pooled.bim").write_text("".join(bim), encoding="utf-8")
    fam = [
        f"{f}\t{i}\t0\t0\t{x}\t-9\n"
        for r in readers
        for f, i, x in zip(r.samples.fid, r.samples.iid, r.samples.sex, strict=True)
    ]
    (out / "pooled.fam").write_text("".join(fam), encoding="utf-8")
    with open(out / "pooled.bed", "wb") as dst:
        dst.write(b"\x6c\x1b\x01")
        chunks = [r.iter_dosages(chunk_variants=POOL_BLOCK_VARIANTS) for r in readers]
        for parts in zip(*chunks, strict=True):
            dst.write(_packed(_bed_codes(np.concatenate([d for _, d in parts], axis=1))))


def conform_study(
    study: Study,
    out: Path,
    run: Runner,
    *,
    samples: int = CONFORM_SAMPLES,
    variants: int = CONFORM_VARIANTS,
    seed: int = CONFORM_SEED,
    sites: Sequence[Path] = (),
) -> ConformOutcome:
    """Run ``study``'s checkable analyses on a federation and compare with plink2.

    With ``sites`` (site directories holding test data), on those sites,
    pooled into ``out/pooled/`` for plink2 (:func:`pool_sites`); otherwise on a
    synthetic federation of ``samples`` x ``variants`` in ``out/cohorts/``.
    ``out`` also gets ``results/``, ``plink2/`` and ``conform.tsv``; ``run``
    calls plink2 (:func:`genofed.coordinator.conform.run_plink2`).
    """
    if sites:
        site_dirs = [Path(d) for d in sites]
        pooled = pool_sites(site_dirs, out / "pooled")
    else:
        cohorts = write_cohorts(
            out / "cohorts",
            sites=CONFORM_SITES,
            samples=samples,
            variants=variants,
            seed=seed,
            missing_rate=CONFORM_MISSING_RATE,
        )
        site_dirs, pooled = list(cohorts.sites), cohorts.pooled
    columns = set()
    for table in ("pheno.tsv", "covar.tsv"):
        path = pooled / table
        if path.is_file():
            columns |= set(path.read_text(encoding="utf-8").splitlines()[0].split("\t"))
    lacking = {
        a.id: [c for c in a.params.get("covariates", ()) if c not in columns]
        for a in study.analyses
    }
    # an analysis whose covariates the pooled tables lack (e.g. PCs that a pca analysis
    # serves) is not run here: nothing central to compare it with
    checkable = tuple(a for a in study.analyses if a.kind in CHECKED_KINDS and not lacking[a.id])
    rows: list[ConformRow] = []
    results = out / "results"
    if checkable:
        # the analyses on every sample: plink2 runs on the whole pooled cohort, so the
        # study's [cohort] and [sample_qc] are not applied (tests/reference checks them)
        sub = dataclasses.replace(
            study,
            analyses=checkable,
            privacy=PrivacySpec(),
            min_sites=None,
            cohort=None,
            sample_qc=None,
        )
        run_study(sub, InProcessTransport(site_dirs), results, engine="in-process")
        provenance = json.loads((results / "provenance.json").read_text(encoding="utf-8"))
        work = out / "plink2"
        work.mkdir(parents=True, exist_ok=True)
        rows = check_analyses(checkable, results, provenance["analysis_outputs"], pooled, work, run)
    ordered: list[ConformRow] = []
    for spec in study.analyses:
        if spec.kind in CHECKED_KINDS and lacking[spec.id]:
            ordered.append(
                not_checked(
                    spec,
                    "covariates not in the pooled tables (e.g. PCs from a pca analysis): "
                    + ", ".join(lacking[spec.id]),
                )
            )
        elif spec.kind in CHECKED_KINDS:
            ordered.extend(r for r in rows if r.analysis == spec.id)
        else:
            ordered.append(not_checked(spec, f"no central reference for {spec.kind!r}"))
    tsv = write_conform_tsv(out / CONFORM_TSV, ordered)
    return ConformOutcome(tuple(ordered), tsv, results, pooled)


__all__ = ["CONFORM_TSV", "ConformOutcome", "InProcessTransport", "conform_study", "pool_sites"]
