"""What a multi-round protocol is given, and what it gives back.

The runner (:mod:`genofed.coordinator.runner`) hands a protocol one
:class:`Job` per attempt: the study, the analysis, the harmonization of the
sites taking part, where to write, and ``ask``, which sends one request kind
to those sites and returns their replies. ``ask_sum`` sends one
request kind and returns only the sum of the sites' summable forms
(:class:`Pooled`): the one way to talk to sites in ``exact`` mode, and the
same pooling in ``plain`` mode. The protocol returns a
:data:`Result`: the files it wrote and its summary statistics. When a site
drops out part-way, ``ask`` raises and the runner starts a new attempt
without it (a new :class:`Job`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genofed.common.errors import GenoFedError
from genofed.common.messages import Reply
from genofed.common.study import AnalysisSpec, Study
from genofed.common.wire.records import NamedArrays
from genofed.coordinator.combine.harmonize import Harmonization
from genofed.coordinator.study_files import ANYWHERE, StudyFiles

#: One site's reply to a request, with the arrays it sent.
Answer = tuple[Reply, NamedArrays]

#: Sends one request kind for an analysis id to every site (inputs in site order);
#: returns the replies in site order.
AskSites = Callable[[str, str, Sequence[NamedArrays]], list[Answer]]


@dataclass(frozen=True)
class Pooled:
    """The sites' replies to one request kind and the sum of their summable forms.

    ``arrays`` is what :mod:`genofed.common.wire.summable` defines for the
    request kind, added up over ``sites``: in ``plain`` mode by the
    coordinator from the sites' replies, in ``exact`` mode by SecAgg+, so
    that the coordinator never holds a site's own arrays. ``replies`` carry
    each site's facts and receipt (and, in ``exact`` mode, no arrays).
    """

    replies: list[Reply]
    arrays: NamedArrays
    #: the sites in the sum, in ``ask``'s order
    sites: list[str]

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The sites' sum ``name``, which must have ``shape`` (else a GenoFedError)."""
        got = self.arrays.get(name)
        if got is None or got.shape != shape:
            have = "missing" if got is None else f"of shape {got.shape}"
            raise GenoFedError(
                f"the sites' summed {name} is {have}, not of shape {shape}: the sites' "
                "replies disagree with the study or the request (are the sites on the same "
                "software version?)"
            )
        return got


#: Sends one request kind to every site (inputs in site order) and returns the pooled sum.
AskSum = Callable[[str, str, Sequence[NamedArrays]], Pooled]

#: An analysis's output files (names under the results directory) and summary statistics.
Result = tuple[list[str], dict[str, object]]


@dataclass(frozen=True)
class Job:
    """One attempt at a multi-round analysis, over one set of sites."""

    study: Study
    spec: AnalysisSpec
    #: restricted to the sites of this attempt
    harmonization: Harmonization
    #: the names of the sites of this attempt, in ``ask``'s order
    sites: list[str]
    #: the results directory being written (the runner's staging directory)
    out: Path
    ask: AskSites
    #: like ``ask``, but returns only the sum over sites (the secure modes' only form)
    ask_sum: AskSum
    #: where the study's files may be read (``scoring_file``)
    files: StudyFiles = ANYWHERE


__all__ = ["Answer", "AskSites", "AskSum", "Job", "Pooled", "Result"]
