"""``genofed study conform``: a study on a synthetic federation against plink2 on the pooled data.

(``km`` and ``cox`` against lifelines on the pooled data, see :mod:`genofed.coordinator.conform`.)

A composition root (it wires the coordinator to the sites' own request
handler in-process, with the same Flower record codec as the engines, but no
Ray or gRPC). The synthetic cohort is :func:`genofed.synth.write_cohorts`'s:
three sites with the demo policy and ``pooled/`` holding the same individuals
for plink2. The comparison is :mod:`genofed.coordinator.conform`'s.

The study runs in ``plain`` release mode whatever its ``[privacy]`` says
(noise would make any comparison fail), on the analyses conform can check;
the others are listed as "not checked by conform".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
from genofed.site_agent.release import handle_request
from genofed.synth import write_cohorts

#: conform's synthetic federation: 3 sites, few enough samples to run in seconds.
CONFORM_SITES = 3
CONFORM_SAMPLES = 600
CONFORM_VARIANTS = 400
CONFORM_SEED = 11
#: more missing calls than the demo, so that most variants drop a few samples
CONFORM_MISSING_RATE = 0.03
CONFORM_TSV = "conform.tsv"


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


def conform_study(
    study: Study,
    out: Path,
    run: Runner,
    *,
    samples: int = CONFORM_SAMPLES,
    variants: int = CONFORM_VARIANTS,
    seed: int = CONFORM_SEED,
) -> ConformOutcome:
    """Run ``study``'s checkable analyses on a synthetic federation and compare with plink2.

    ``out`` gets ``cohorts/`` (sites and pooled data), ``results/``,
    ``plink2/`` and ``conform.tsv``; ``run`` calls plink2
    (:func:`genofed.coordinator.conform.run_plink2`).
    """
    cohorts = write_cohorts(
        out / "cohorts",
        sites=CONFORM_SITES,
        samples=samples,
        variants=variants,
        seed=seed,
        missing_rate=CONFORM_MISSING_RATE,
    )
    columns = set()
    for table in ("pheno.tsv", "covar.tsv"):
        path = cohorts.pooled / table
        if path.is_file():
            columns |= set(path.read_text(encoding="utf-8").splitlines()[0].split("\t"))
    lacking = {
        a.id: [c for c in a.params.get("covariates", ()) if c not in columns]
        for a in study.analyses
    }
    # an analysis whose covariates the synthetic tables lack (e.g. PCs that a pca analysis
    # serves) is not run here: nothing central to compare it with
    checkable = tuple(a for a in study.analyses if a.kind in CHECKED_KINDS and not lacking[a.id])
    rows: list[ConformRow] = []
    results = out / "results"
    if checkable:
        sub = dataclasses.replace(study, analyses=checkable, privacy=PrivacySpec(), min_sites=None)
        run_study(sub, InProcessTransport(cohorts.sites), results, engine="in-process")
        provenance = json.loads((results / "provenance.json").read_text(encoding="utf-8"))
        work = out / "plink2"
        work.mkdir(parents=True, exist_ok=True)
        rows = check_analyses(
            checkable, results, provenance["analysis_outputs"], cohorts.pooled, work, run
        )
    ordered: list[ConformRow] = []
    for spec in study.analyses:
        if spec.kind in CHECKED_KINDS and lacking[spec.id]:
            ordered.append(
                not_checked(
                    spec,
                    "covariates not in the synthetic tables (e.g. PCs from a pca analysis): "
                    + ", ".join(lacking[spec.id]),
                )
            )
        elif spec.kind in CHECKED_KINDS:
            ordered.extend(r for r in rows if r.analysis == spec.id)
        else:
            ordered.append(not_checked(spec, f"no central reference for {spec.kind!r}"))
    tsv = write_conform_tsv(out / CONFORM_TSV, ordered)
    return ConformOutcome(tuple(ordered), tsv, results, cohorts.pooled)


__all__ = ["CONFORM_TSV", "ConformOutcome", "InProcessTransport", "conform_study"]
