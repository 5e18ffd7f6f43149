"""The study's cohort and sample QC funnel (``[cohort]``, ``[sample_qc]``) in the summary.

Each site reports, with its replies, its genotyped samples, how many
samples each sample QC rule removed and the cohort's size there
(:mod:`genofed.site_agent.cohort`); a site withholds a count from 1 to its
``min_cell_count - 1`` (and then its cohort size). The summary's ``cohort``
key holds the definition, the rules, one funnel per site and the pooled
funnel: genotyped, removed by the cohort's conditions, by each QC rule,
left. A pooled number any site withheld is ``"withheld"``; so is a step
that would be computed from a withheld count.
"""

from __future__ import annotations

from collections.abc import Iterable

from genofed.common.cohort import (
    COHORT_SAMPLES_FACT,
    SAMPLE_QC_FACT,
    SAMPLE_QC_RULES,
    WITHHELD,
)
from genofed.common.study import Study
from genofed.coordinator.site_record import SiteRecord

#: The funnel's steps (the QC rules follow the cohort's conditions).
COHORT_STEP = "cohort"
Count = int | str  # a number, or WITHHELD


def _count(text: str | None) -> Count | None:
    if text is None:
        return None
    return int(text) if text.isdigit() else WITHHELD


def _minus(total: Count, *parts: Count) -> Count:
    if isinstance(total, str) or any(isinstance(p, str) for p in parts):
        return WITHHELD
    return total - sum(int(p) for p in parts)


def _site_funnel(record: SiteRecord, rules: list[str], filtered: bool) -> dict[str, object] | None:
    genotyped = _count(record.facts.get("n_samples"))
    left = _count(record.facts.get(COHORT_SAMPLES_FACT))
    removed = {r: _count(record.facts.get(SAMPLE_QC_FACT.format(rule=r))) for r in rules}
    if genotyped is None or left is None or any(v is None for v in removed.values()):
        return None  # the site did not say (an older site agent)
    qc: list[Count] = [v for v in removed.values() if v is not None]
    return {
        "site": record.name,
        "genotyped": genotyped,
        "removed": {
            **({COHORT_STEP: _minus(genotyped, left, *qc)} if filtered else {}),
            **removed,
        },
        "left": left,
    }


def _pooled(values: Iterable[Count]) -> Count:
    total = 0
    for v in values:
        if isinstance(v, str):
            return WITHHELD
        total += v
    return total


def cohort_summary(study: Study, sites: Iterable[SiteRecord]) -> dict[str, object] | None:
    """The summary's ``cohort`` key, or None for a study with neither table."""
    if study.cohort is None and study.sample_qc is None:
        return None
    qc = study.sample_qc
    rules = [
        r
        for r, on in zip(
            SAMPLE_QC_RULES,
            (qc is not None and qc.mind is not None, qc is not None and qc.het_sd is not None),
            strict=True,
        )
        if on
    ]
    records = list(sites)
    funnels = [_site_funnel(s, rules, study.cohort is not None) for s in records]
    said = [f for f in funnels if f is not None]
    steps = [COHORT_STEP, *rules] if study.cohort is not None else rules
    pooled: dict[str, object] = {
        "genotyped": _pooled(f["genotyped"] for f in said),  # type: ignore[misc]
        "removed": {
            step: _pooled(f["removed"][step] for f in said)  # type: ignore[index]
            for step in steps
        },
        "left": _pooled(f["left"] for f in said),  # type: ignore[misc]
    }
    return {
        "definition": study.cohort.text() if study.cohort is not None else "every genotyped sample",
        "sample_qc": qc.to_json() if qc is not None else {},
        "steps": steps,
        "sites": said,
        "sites_not_reporting": sorted(
            s.name for s, f in zip(records, funnels, strict=True) if f is None
        ),
        "pooled": pooled,
    }


__all__ = ["COHORT_STEP", "cohort_summary"]
