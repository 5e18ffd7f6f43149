"""The coordinator halves of the analyses: one :class:`Protocol` per analysis kind.

:data:`PROTOCOLS` is the coordinator's one registry, the counterpart of the
site's ``SERVER`` tables (:mod:`genofed.site_agent.requests`). For every kind
of :data:`genofed.common.analyses.ANALYSIS_KINDS` it says how the runner
(:mod:`genofed.coordinator.runner`) gets its results and how the analyst's
report (:mod:`genofed.coordinator.writers.analyst_report`) shows them:

* ``run``: the multi-round protocol, given a :class:`~.job.Job` per attempt
  (one module per analysis here: ``glm``, ``pca``, ``prs``, ``pgx``,
  ``survival``, ``train``); ``None`` for the count kinds, which the study's
  one ``genotype_counts`` round serves together (:mod:`.counts`, with
  :mod:`.secure_counts` for SecAgg+);
* ``section``: the report's renderer (``writers/analyst_report/sections.py``);
* ``plots``: whether it draws plots, which need the ``genofed[plot]`` extra;
  the runner checks that before the first round, so that no site spends
  privacy budget on a study that cannot finish.

``tests/unit/test_registries.py`` fails when a kind lacks its site server,
its protocol or its report section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from genofed.common.analyses import (
    COUNT_KINDS,
    GLM_KIND,
    PGX_KIND,
    PRS_KIND,
    TRAIN_KIND,
)
from genofed.common.study import PrivacySpec
from genofed.common.wire.pca import PCA_KIND
from genofed.common.wire.survival import COX_KIND, KM_KIND
from genofed.coordinator.protocols.glm import run_glm
from genofed.coordinator.protocols.job import Answer, AskSites, Job, Result
from genofed.coordinator.protocols.pca import run_pca
from genofed.coordinator.protocols.pgx import run_pgx
from genofed.coordinator.protocols.prs import run_prs
from genofed.coordinator.protocols.survival import run_cox, run_km
from genofed.coordinator.protocols.train import run_train
from genofed.coordinator.writers.analyst_report import sections
from genofed.coordinator.writers.analyst_report.sections import Renderer


@dataclass(frozen=True)
class Protocol:
    """An analysis's coordinator half, as :data:`PROTOCOLS` registers it."""

    kind: str
    #: Runs one attempt over the sites taking part; None: combined from the counts round.
    run: Callable[[Job], Result] | None
    #: Renders its section of the analyst's report.
    section: Renderer
    #: Whether it writes plots (matplotlib: the ``genofed[plot]`` extra).
    plots: bool = False


def _glm_prefix(job: Job) -> str:
    """``gwas``, or ``gwas.<id>`` when two glm analyses share a phenotype."""
    phenotype = job.spec.params["phenotype"]
    same = [
        a for a in job.study.analyses if a.kind == GLM_KIND and a.params["phenotype"] == phenotype
    ]
    return "gwas" if len(same) == 1 else f"gwas.{job.spec.id}"


def _pca_prefix(job: Job) -> str:
    """``pca``, or ``pca.<id>`` when the study has several pca analyses."""
    several = sum(a.kind == PCA_KIND for a in job.study.analyses) > 1
    return f"pca.{job.spec.id}" if several else "pca"


def _glm(job: Job) -> Result:
    return run_glm(
        job.spec,
        job.harmonization,
        job.out,
        job.ask,
        ask_sum=job.ask_sum,
        prefix=_glm_prefix(job),
    )


def _pca(job: Job) -> Result:
    return run_pca(
        job.spec,
        job.harmonization,
        job.out,
        job.ask,
        ask_sum=job.ask_sum,
        # the random start is the same in every release mode, so exact == plain
        study_sha256=dataclasses.replace(job.study, privacy=PrivacySpec()).sha256,
        prefix=_pca_prefix(job),
    )


def _prs(job: Job) -> Result:
    return run_prs(
        job.spec,
        job.sites,
        job.out,
        job.ask,
        ask_sum=job.ask_sum,
        files=job.files,
        qc_kept=job.harmonization.variants if job.study.qc is not None else None,
    )


def _pgx(job: Job) -> Result:
    return run_pgx(job.spec, job.sites, job.out, job.ask, ask_sum=job.ask_sum)


def _km(job: Job) -> Result:
    return run_km(job.spec, job.sites, job.out, job.ask, ask_sum=job.ask_sum)


def _cox(job: Job) -> Result:
    return run_cox(job.spec, job.sites, job.out, job.ask, ask_sum=job.ask_sum)


def _train(job: Job) -> Result:
    return run_train(
        job.spec,
        job.harmonization,
        job.out,
        job.ask,
        ask_sum=job.ask_sum,
        study_sha256=job.study.sha256,
    )


#: The coordinator half of every analysis kind, by kind.
PROTOCOLS: MappingProxyType[str, Protocol] = MappingProxyType(
    {
        p.kind: p
        for p in (
            *(Protocol(kind, None, sections.counts) for kind in sorted(COUNT_KINDS)),
            Protocol(GLM_KIND, _glm, sections.glm, plots=True),
            Protocol(PCA_KIND, _pca, sections.pca),
            Protocol(PRS_KIND, _prs, sections.prs, plots=True),
            Protocol(PGX_KIND, _pgx, sections.pgx),
            Protocol(KM_KIND, _km, sections.km, plots=True),
            Protocol(COX_KIND, _cox, sections.cox),
            Protocol(TRAIN_KIND, _train, sections.train),
        )
    }
)

#: The analyst report's renderer of each kind (a kind without one is shown by
#: :func:`~genofed.coordinator.writers.analyst_report.sections.generic`).
REPORT_SECTIONS: MappingProxyType[str, Renderer] = MappingProxyType(
    {kind: p.section for kind, p in PROTOCOLS.items()}
)

__all__ = [
    "PROTOCOLS",
    "REPORT_SECTIONS",
    "Answer",
    "AskSites",
    "Job",
    "Protocol",
    "Result",
]
