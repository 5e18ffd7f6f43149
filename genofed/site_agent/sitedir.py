"""The site directory: ``site.toml`` (where the data are) and ``policy.toml`` (what may leave).

``site.toml``::

    [site]
    name = "hospital-a"          # [A-Za-z0-9_.-]{1,64}
    [data]
    genotypes = "cohort.bed"     # PLINK 1 .bed or PLINK 2 .pgen (with .bim/.fam or .pvar/.psam);
                                 # relative paths are relative to this directory
    phenotypes = "pheno.tsv"     # optional
    covariates = "covar.tsv"     # optional
    build = "GRCh38"             # optional: "GRCh37" or "GRCh38"; checked against a
                                 # VCF/.pvar header's ##contig lengths when it has them

``state/`` holds the site's Ed25519 audit key and its audit log (see
:mod:`genofed.site_agent.audit.log`); ``init`` creates them with a new key.

Paths are stored relative to the site directory when the file lies inside it
(so the directory can be moved or mounted elsewhere as a whole) and absolute
otherwise.

:func:`init_site` validates every input before it writes anything, and writes
each file to a temporary name then renames it, so a failed ``init`` leaves the
directory as it found it, and a site directory that has a ``site.toml`` was
written by an ``init`` that checked its data.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w

from genofed.common.errors import ConfigError, InputError
from genofed.common.tomlconfig import check_keys, get_typed, load_toml
from genofed.site_agent.audit.log import AuditPaths, init_audit, remove_created
from genofed.site_agent.io.build import BUILDS, file_build
from genofed.site_agent.io.genotypes import (
    FORMATS,
    detect_format,
    genotype_files,
    genotypes_path,
    open_genotypes,
)
from genofed.site_agent.io.pheno import PhenoTable, match_samples, read_pheno_table
from genofed.site_agent.io.plink import Variants
from genofed.site_agent.privacy.policy import DEFAULT_POLICY_TOML, DEMO_POLICY_TOML, POLICY_FILE

SITE_CONFIG = "site.toml"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DATA_KEYS = ("genotypes", "phenotypes", "covariates")
_SITE_HEADER = "# GenoFed site configuration, written by `genofed-site init`.\n\n"


@dataclass(frozen=True)
class SiteConfig:
    """A site's identity and data files; paths are absolute once loaded."""

    name: str
    directory: Path
    genotypes: Path
    phenotypes: Path | None = None
    covariates: Path | None = None
    #: the genome build site.toml declares ("GRCh37" / "GRCh38"), None when it declares none
    build: str | None = None


@dataclass(frozen=True)
class SiteSummary:
    """Counts that show a site's data were read as intended."""

    config: SiteConfig
    n_samples: int
    n_variants: int
    n_with_phenotypes: int | None
    n_matched: int | None
    phenotype_columns: tuple[str, ...]
    covariate_columns: tuple[str, ...]
    #: "PLINK 1 .bed" or "PLINK 2 .pgen"
    genotype_format: str = ""
    #: chromosome codes in file order of first appearance, with their variant counts
    chromosomes: tuple[tuple[str, int], ...] = ()
    #: variants with an allele longer than one base (indels, MNPs, symbolic alleles)
    n_long_alleles: int = 0
    #: VCF/BCF records (.pvar lines) with several ALTs, and the variants they were split into
    n_split_records: int = 0
    n_split_variants: int = 0
    #: the most ALTs one record holds (1 when every record is biallelic)
    max_alts: int = 1
    #: the files also hold dosages (GenoFed reads the hard calls; plink2 would use the dosages)
    has_dosages: bool = False
    #: the declared build, else the one the file's header says, else "unknown"
    genome_build: str = "unknown"


def _check_build(build: str, *, path: Path | None = None) -> None:
    if build not in BUILDS:
        error = ConfigError if path is not None else InputError
        raise error(
            f"genome build {build!r} is not one GenoFed knows",
            path=path,
            hint=f"set build to one of {', '.join(map(repr, BUILDS))} (or leave it out)",
        )


def genome_build(config: SiteConfig) -> str:
    """The declared build checked against the genotype file's header; "unknown" if neither says."""
    files = genotype_files(config.genotypes)
    header = files.get("vcf", files.get("pvar"))
    try:
        found = file_build(header) if header is not None else None
    except OSError:
        found = None  # the reader reports unreadable files with the fix
    if config.build is not None and found is not None and found != config.build:
        raise InputError(
            f"the header's ##contig/##reference lines say genome build {found}, but the site "
            f"declares {config.build}",
            path=header,
            hint=f"set build = {found!r} in site.toml (genofed-site init --build {found}), or "
            "give the files on the declared build (lift them over with CrossMap or liftOver)",
        )
    return config.build or found or "unknown"


def _check_name(name: str, *, path: Path | None = None) -> None:
    if not NAME_PATTERN.fullmatch(name):
        error = ConfigError if path is not None else InputError
        raise error(
            f"site name {name!r} is not allowed",
            path=path,
            hint="use 1 to 64 letters, digits, '_', '.' or '-', e.g. hospital-a",
        )


def _chromosomes(chrom: np.ndarray) -> tuple[tuple[str, int], ...]:
    codes, first, counts = np.unique(chrom, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    return tuple((str(codes[i]), int(counts[i])) for i in order)


def _long_alleles(variants: Variants) -> int:
    def long(column: np.ndarray) -> np.ndarray:
        return np.asarray((np.char.str_len(column) != 1) & (column != "."), dtype=np.bool_)

    return int((long(variants.ref) | long(variants.alt)).sum())


def inspect_site(config: SiteConfig) -> SiteSummary:
    """Open and validate every data file of ``config`` and count what they hold."""
    with open_genotypes(config.genotypes) as bed:
        samples, variants = bed.samples, bed.variants  # parses and checks the .bim/.pvar
        has_dosages = bool(getattr(bed, "has_dosages", False))
        # the VCF/BCF and .pgen readers split multi-allelic records; a .bed holds none
        split = [int(getattr(bed, a, 0)) for a in ("split_records", "split_variants", "max_alts")]
    build = genome_build(config)
    pheno = read_pheno_table(config.phenotypes) if config.phenotypes else None
    covar = read_pheno_table(config.covariates) if config.covariates else None
    tables = [t for t in (pheno, covar) if t is not None]
    n_with_pheno = n_matched = None
    if pheno is not None:
        n_with_pheno = match_samples(samples, pheno).n_matched
    if tables:
        n_matched = match_samples(samples, *tables).n_matched
        if n_matched == 0:
            raise InputError(
                "no genotyped sample appears in " + " and ".join(str(t.path) for t in tables),
                path=list(genotype_files(config.genotypes).values())[-1],
                hint="the tables must use the same FID and IID as the .fam/.psam "
                "(or have only an IID column matching its IIDs)",
            )

    def names(table: PhenoTable | None) -> tuple[str, ...]:
        return tuple(table.columns) if table is not None else ()

    return SiteSummary(
        config=config,
        n_samples=len(samples),
        n_variants=len(variants),
        genotype_format=FORMATS[detect_format(config.genotypes)[0]].name,
        chromosomes=_chromosomes(variants.chrom),
        n_long_alleles=_long_alleles(variants),
        n_split_records=split[0],
        n_split_variants=split[1],
        max_alts=max(split[2], 1),
        has_dosages=has_dosages,
        genome_build=build,
        n_with_phenotypes=n_with_pheno,
        n_matched=n_matched,
        phenotype_columns=names(pheno),
        covariate_columns=names(covar),
    )


def load_site(directory: Path) -> SiteConfig:
    """Read ``directory/site.toml``; relative data paths resolve against ``directory``."""
    directory = Path(os.path.abspath(directory))
    path = directory / SITE_CONFIG
    if not path.is_file():
        raise ConfigError(
            "file not found",
            path=path,
            hint="create the site directory with: genofed-site init --name NAME "
            "--genotypes X.bed --out DIR",
        )
    doc = load_toml(path)
    check_keys(doc, ("site", "data"), path=path, where="the file", required=("site", "data"))
    for table in ("site", "data"):
        if not isinstance(doc[table], dict):
            raise ConfigError(
                f"{table!r} must be a table ([{table}])",
                path=path,
                hint=f"write [{table}] on its own line and its keys below it "
                "(genofed-site init writes a complete site.toml)",
            )
    check_keys(doc["site"], ("name",), path=path, where="[site]", required=("name",))
    check_keys(
        doc["data"], (*_DATA_KEYS, "build"), path=path, where="[data]", required=("genotypes",)
    )
    name = get_typed(doc["site"], "name", str, None, path=path, where="site")
    _check_name(name, path=path)
    paths: dict[str, Path | None] = {}
    for key in _DATA_KEYS:
        value = get_typed(doc["data"], key, str, None, path=path, where="data")
        paths[key] = None if value is None else directory / value
    genotypes = paths.pop("genotypes")
    assert genotypes is not None  # required above
    build = get_typed(doc["data"], "build", str, None, path=path, where="data")
    if build is not None:
        _check_build(build, path=path)
    return SiteConfig(name=name, directory=directory, genotypes=genotypes, build=build, **paths)


def _stored(path: Path, directory: Path) -> str:
    """``path`` relative to ``directory`` when inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    if absolute.is_relative_to(directory):
        return absolute.relative_to(directory).as_posix()
    return str(absolute)


def _write_new(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("x", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_all(directory: Path, files: list[tuple[str, str]]) -> None:
    """Create ``directory`` if needed and write ``files``; on failure undo all of it."""
    created = not directory.exists()
    written: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files:
            _write_new(directory / name, text)
            written.append(directory / name)
    except BaseException as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if created and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        if isinstance(exc, OSError):
            raise InputError(
                f"cannot write the site files ({exc.strerror or exc})",
                path=directory,
                hint="check that the directory is writable and the disk is not full",
            ) from exc
        raise


def init_site(
    out: Path,
    *,
    name: str,
    genotypes: Path,
    phenotypes: Path | None = None,
    covariates: Path | None = None,
    build: str | None = None,
    demo_policy: bool = False,
) -> SiteSummary:
    """Validate the inputs, then write ``site.toml``, ``policy.toml`` and ``state/`` into ``out``.

    ``state/`` holds the site's new audit key and empty audit log
    (:mod:`genofed.site_agent.audit.log`). Nothing is written if any check fails.
    ``out`` may exist (and hold the data files) but must not already hold a
    ``site.toml``, ``policy.toml``, audit key or audit log.
    """
    _check_name(name)
    if build is not None:
        _check_build(build)
    directory = Path(os.path.abspath(out))
    if directory.exists() and not directory.is_dir():
        raise InputError(
            "exists and is not a directory",
            path=directory,
            hint="give --out a directory (it is created if absent)",
        )
    audit = AuditPaths.of(directory)
    for existing in (directory / SITE_CONFIG, directory / POLICY_FILE, audit.key, audit.db):
        if existing.exists():
            raise InputError(
                "already exists; refusing to overwrite a site's configuration",
                path=existing,
                hint="choose another --out directory, or move the old files away first",
            )
    config = SiteConfig(
        name=name,
        directory=directory,
        genotypes=Path(os.path.abspath(genotypes_path(genotypes))),
        phenotypes=Path(os.path.abspath(phenotypes)) if phenotypes else None,
        covariates=Path(os.path.abspath(covariates)) if covariates else None,
        build=build,
    )
    summary = inspect_site(config)

    data = {"genotypes": _stored(config.genotypes, directory)}
    for key in ("phenotypes", "covariates"):
        value = getattr(config, key)
        if value is not None:
            data[key] = _stored(value, directory)
    if build is not None:
        data["build"] = build
    site_text = _SITE_HEADER + tomli_w.dumps({"site": {"name": name}, "data": data})
    policy_text = DEMO_POLICY_TOML if demo_policy else DEFAULT_POLICY_TOML

    # audit key and log, then policy: a site.toml is the mark of a finished init.
    created = not directory.exists()
    state = init_audit(directory)
    try:
        _write_all(directory, [(POLICY_FILE, policy_text), (SITE_CONFIG, site_text)])
    except BaseException:
        remove_created(state)
        if created and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        raise
    return summary


__all__ = [
    "NAME_PATTERN",
    "SITE_CONFIG",
    "SiteConfig",
    "SiteSummary",
    "genome_build",
    "init_site",
    "inspect_site",
    "load_site",
]
