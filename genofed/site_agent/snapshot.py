"""Frozen cohort snapshots: the site answers from a copy of its data that changes in steps.

A hospital's files change: patients enrol, leave, get a measurement, a
genotype is corrected. If every request read the live files, two runs of
one study a day apart would sum over cohorts that differ by the one person
who changed, and their difference would be her. So a site whose disclosure
guard is on (:mod:`genofed.site_agent.privacy.guard`) answers from a
**snapshot**: a copy of its genotype fileset and phenotype and covariate
tables in ``state/snapshots/<id>/``, recorded in ``state/snapshots/current.json``
with the SHA-256 of every file. When the live files change, the site counts
the people whose data differ between the snapshot and the live files
(added, removed, a table row changed, a genotype changed at a variant both
hold) and takes a new snapshot only when at least ``min_cell_count`` people
differ; otherwise it keeps answering from the old one, and ``genofed-site
status`` says so (``pending``). Releases from different snapshots are still
audited against each other by the guard, which keys sets by person IDs.

Cost: a request stats the live files (size, mtime); only when they moved
are they hashed, and only when a hash differs are the files compared
(every genotype of the variants and samples both hold, once per change).
A snapshot doubles the disk space of the site's data.

With the guard off (``min_cell_count = 0`` or ``audit_sample_sets = false``,
e.g. the demo policy) the site reads its live files as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from genofed.common.clock import utc_now
from genofed.site_agent.io.genotypes import GenotypeFile, genotype_files, open_genotypes
from genofed.site_agent.io.pheno import read_pheno_table
from genofed.site_agent.sitedir import SiteConfig

SNAPSHOT_DIR = Path("state") / "snapshots"
CURRENT = "current.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SnapshotStatus:
    """Which snapshot a site answers from, and how far its live files have moved."""

    id: str
    created: str
    n_samples: int
    #: people whose data differ in the live files (0: none; below min_cell_count: pending)
    pending_people: int = 0

    def describe(self) -> str:
        text = f"{self.id[:12]} from {self.created} ({self.n_samples} samples)"
        if self.pending_people:
            text += (
                f"; the live files differ by {self.pending_people} people, fewer than "
                "min_cell_count: kept until enough have changed"
            )
        return text


def serving_config(
    config: SiteConfig, min_cell: int, clock: Callable[[], datetime] | None = None
) -> tuple[SiteConfig, SnapshotStatus]:
    """The configuration to answer from (the snapshot's copies) and the snapshot's status."""
    root = config.directory / SNAPSHOT_DIR
    live = _live_files(config)
    record = _read(root)
    if record is None:
        return _take(config, root, live, clock)
    stamps = {k: _stamp(p) for k, p in live.items()}
    if stamps == record.get("checked_stamps"):
        return _config_of(config, root, record), _status(record)
    hashes = {k: _sha256(p) for k, p in live.items()}
    if hashes == record["live_sha256"]:
        record["checked_stamps"] = stamps
        record["pending_people"] = 0
        _write(root, record)
        return _config_of(config, root, record), _status(record)
    frozen = _config_of(config, root, record)
    people = changed_people(frozen, config)
    if people >= max(min_cell, 1):
        return _take(config, root, live, clock)
    record["checked_stamps"] = stamps
    record["pending_people"] = people
    _write(root, record)
    return frozen, _status(record)


def snapshot_status(site_dir: Path) -> SnapshotStatus | None:
    """The current snapshot of a site directory, None if it has none."""
    record = _read(Path(site_dir) / SNAPSHOT_DIR)
    return None if record is None else _status(record)


def changed_people(old: SiteConfig, new: SiteConfig) -> int:
    """People whose data differ between two configurations' files (by FID and IID)."""
    with open_genotypes(old.genotypes) as a, open_genotypes(new.genotypes) as b:
        ids_a = [f"{f}\t{i}" for f, i in zip(a.samples.fid, a.samples.iid, strict=True)]
        ids_b = [f"{f}\t{i}" for f, i in zip(b.samples.fid, b.samples.iid, strict=True)]
        changed = set(ids_a) ^ set(ids_b)
        common = sorted(set(ids_a) & set(ids_b))
        pos_a = {x: i for i, x in enumerate(ids_a)}
        pos_b = {x: i for i, x in enumerate(ids_b)}
        rows_a = np.array([pos_a[x] for x in common], dtype=np.int64)
        rows_b = np.array([pos_b[x] for x in common], dtype=np.int64)
        key_a = _variant_keys(a)
        key_b = {k: i for i, k in enumerate(_variant_keys(b))}
        both = [(i, key_b[k]) for i, k in enumerate(key_a) if k in key_b]
        if common and both:
            va = np.array([i for i, _ in both], dtype=np.int64)
            vb = np.array([j for _, j in both], dtype=np.int64)
            order_a, order_b = np.argsort(rows_a), np.argsort(rows_b)
            differ = np.zeros(len(common), dtype=np.bool_)
            sorted_a, sorted_b = rows_a[order_a], rows_b[order_b]
            for (_, ga), (_, gb) in zip(
                a.iter_dosages(va, sample_idx=sorted_a),
                b.iter_dosages(vb, sample_idx=sorted_b),
                strict=True,
            ):
                # back to the order of ``common`` on both sides
                da = np.empty_like(ga)
                da[:, order_a] = ga
                db = np.empty_like(gb)
                db[:, order_b] = gb
                differ |= (da != db).any(axis=0)
            changed |= {common[i] for i in np.flatnonzero(differ)}
    for attr in ("phenotypes", "covariates"):
        changed |= _changed_rows(getattr(old, attr), getattr(new, attr))
    return len(changed)


def _variant_keys(bed: GenotypeFile) -> list[str]:
    v = bed.variants
    return [
        f"{c}:{p}:{r}:{a}:{i}"
        for c, p, r, a, i in zip(v.chrom, v.pos, v.ref, v.alt, v.id, strict=True)
    ]


def _changed_rows(old: Path | None, new: Path | None) -> set[str]:
    if old is None and new is None:
        return set()
    a = _rows(old) if old is not None else {}
    b = _rows(new) if new is not None else {}
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


def _rows(path: Path) -> dict[str, tuple[Any, ...]]:
    table = read_pheno_table(path)
    names = sorted(table.columns)
    out: dict[str, tuple[Any, ...]] = {}
    for r, (f, i) in enumerate(zip(table.fid, table.iid, strict=True)):
        out[f"{f}\t{i}"] = tuple(
            (n, None if np.isnan(table.columns[n][r]) else float(table.columns[n][r]))
            for n in names
        )
    return out


def _live_files(config: SiteConfig) -> dict[str, Path]:
    files = genotype_files(config.genotypes)  # the genotype files, main file first
    if config.phenotypes is not None:
        files["phenotypes"] = config.phenotypes
    if config.covariates is not None:
        files["covariates"] = config.covariates
    return files


def _take(
    config: SiteConfig, root: Path, live: dict[str, Path], clock: Callable[[], datetime] | None
) -> tuple[SiteConfig, SnapshotStatus]:
    """Copy the live files into a new snapshot directory and make it current."""
    hashes = {k: _sha256(p) for k, p in live.items()}
    ident = hashlib.sha256(
        "\n".join(f"{k}:{h}" for k, h in sorted(hashes.items())).encode("ascii")
    ).hexdigest()
    target = root / ident
    if not target.is_dir():
        staging = root / f".{ident}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for key, path in live.items():
            shutil.copy2(path, staging / _name(key, path))
        os.replace(staging, target)
    now = ((clock or utc_now)()).isoformat(timespec="seconds")
    main = _genotype_key(live)
    with open_genotypes(target / _name(main, live[main])) as bed:
        n_samples = bed.n_samples
    record = {
        "genotypes": main,
        "id": ident,
        "created": now,
        "n_samples": n_samples,
        "files": {k: _name(k, p) for k, p in live.items()},
        "live_sha256": hashes,
        "checked_stamps": {k: _stamp(p) for k, p in live.items()},
        "pending_people": 0,
    }
    previous = _read(root)
    _write(root, record)
    if previous is not None and previous["id"] != ident:
        shutil.rmtree(root / previous["id"], ignore_errors=True)
    return _config_of(config, root, record), _status(record)


_TABLES = ("phenotypes", "covariates")


def _genotype_key(files: dict[str, Any]) -> str:
    """The key of the main genotype file (the first that is not a table)."""
    return next(k for k in files if k not in _TABLES)


def _name(key: str, path: Path) -> str:
    """A file's name in the snapshot: genotype files keep theirs (their prefix must match)."""
    return f"{key}{''.join(path.suffixes)}" if key in _TABLES else path.name


def _config_of(config: SiteConfig, root: Path, record: dict[str, Any]) -> SiteConfig:
    files = record["files"]
    target = root / record["id"]
    return replace(
        config,
        # records written before pgen support have no "genotypes": they hold a .bed
        genotypes=target / files[record.get("genotypes", "bed")],
        phenotypes=target / files["phenotypes"] if "phenotypes" in files else None,
        covariates=target / files["covariates"] if "covariates" in files else None,
    )


def _status(record: dict[str, Any]) -> SnapshotStatus:
    return SnapshotStatus(
        id=str(record["id"]),
        created=str(record["created"]),
        n_samples=int(record["n_samples"]),
        pending_people=int(record.get("pending_people", 0)),
    )


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(root: Path) -> dict[str, Any] | None:
    path = root / CURRENT
    if not path.is_file():
        return None
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if not (root / str(record["id"])).is_dir():
        return None  # the copy is gone: take a new one
    return record


def _write(root: Path, record: dict[str, Any]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{CURRENT}.tmp"
    tmp.write_text(json.dumps(record, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, root / CURRENT)


__all__ = ["SnapshotStatus", "changed_people", "serving_config", "snapshot_status"]
