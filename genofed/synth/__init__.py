"""Synthetic multi-site cohorts with known truth, for the demo, tests and benchmarks.

:func:`write_cohorts` simulates a stratified human-like genome with msprime
(two populations split 1,500 generations ago, Ne 10,000, recombination 1e-8,
mutation 1.25e-8, three autosomes; :mod:`~genofed.synth.coalescent`), spreads
the individuals over unequal sites with different ancestry mixes
(:mod:`~genofed.synth.layout`), draws covariates and phenotypes from known
causal variants (:mod:`~genofed.synth.phenotypes`) and a recurrence
time-to-event outcome driven by a genomic score
(:mod:`~genofed.synth.recurrence`), and writes one site directory per
hospital plus the pooled cohort and ``truth.json``
(:mod:`~genofed.synth.cohort`). The same seed gives byte-identical files,
except each site's ``state/`` (its audit key is new at every init).

This package is a composition root for test data: it may use the site
agent's directory code, never the coordinator.
"""

from genofed.synth.cohort import SynthSummary, write_cohorts

__all__ = ["SynthSummary", "write_cohorts"]
