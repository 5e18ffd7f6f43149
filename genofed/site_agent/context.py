"""What a site request module is given, and what it gives back.

The one release path (:mod:`genofed.site_agent.release`) checks a request
(study signature, policy, cohort size, approval, the analysis, its release
mode) and then hands the analysis's module one :class:`RequestContext`. The
module computes its statistics and returns an :class:`Answer`: the named
arrays that would leave, the facts that go with them, and the privacy
charge already committed to the ledger, if any. The path audits the answer
and builds the reply; a module never writes the reply itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from genofed.common.clock import Clock
from genofed.common.errors import PolicyRefusal
from genofed.common.messages import Request
from genofed.common.reasons import BAD_REQUEST, DISCLOSURE_RISK
from genofed.common.study import AnalysisSpec, Study
from genofed.common.wire.records import NamedArrays
from genofed.site_agent.io.genotypes import GenotypeFile
from genofed.site_agent.privacy.dp_release import ledger_for
from genofed.site_agent.privacy.guard import ReleaseGuard, disclosure_message
from genofed.site_agent.privacy.ledger import Charge, Ledger
from genofed.site_agent.privacy.policy import SitePolicy
from genofed.site_agent.sitedir import SiteConfig


class Sealer(Protocol):
    """Turns a site's vector into what leaves for a secure sum (SecAgg+ masking).

    The Flower adapter (:mod:`genofed.site_agent.secure_release`) implements it.
    """

    def check(self, min_participants: int) -> None:
        """Raise :class:`PolicyRefusal` before anything is computed if the round is unsafe.

        ``min_participants``: the fewest sites the secure sum may have for this study.
        """
        ...

    def seal(self, vector: np.ndarray) -> NamedArrays:
        """The masked arrays that leave instead of ``vector`` (integers, as SecAgg+ sums them)."""
        ...


@dataclass
class Answer:
    """A request module's result: arrays to release, facts, and the charge made for them."""

    arrays: NamedArrays
    facts: dict[str, str] = field(default_factory=dict)
    charge: Charge | None = None
    #: ``column:sha256`` of the sample sets the release sums over (set by the release path)
    sample_sets: tuple[str, ...] = ()
    #: variant-space directions the release uses (pca; charged against the policy's cap)
    directions: int = 0
    #: set by the release path: what names the request for replays (privacy/replays.py)
    replay_key: str = ""
    #: set by the release path: the arrays and facts as served, before any masking
    served: tuple[NamedArrays, dict[str, str]] | None = None
    #: set by the release path: the audit entry of the release this answer repeats
    replay_of: int | None = None


@dataclass(frozen=True)
class Server:
    """An analysis's site half, as its module under ``requests/`` registers it (``SERVER``)."""

    #: Analysis kinds whose requests it answers (empty: none, e.g. ``variants``).
    analyses: frozenset[str]
    #: Request kinds it answers.
    request_kinds: frozenset[str]
    #: Study release modes it can answer in; any other is refused as ``UNSUPPORTED``.
    modes: frozenset[str]
    #: Why other modes are refused (the refusal's message; ``{kind}``: the analysis kind).
    unsupported: str
    serve: Callable[[RequestContext], Answer]
    #: Whether it answers Flower SecAgg+ rounds (its arrays are masked by the sealer).
    secure: bool = False
    #: The analysis kind each request kind serves, where it serves several (e.g. km, cox).
    analysis_of: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestContext:
    """Everything one request is answered from; built by the release path after its checks."""

    request: Request
    inputs: NamedArrays
    study: Study
    #: The analysis the request serves; None for requests that serve none (``variants``)
    #: or several (``genotype_counts``: see :attr:`specs`).
    spec: AnalysisSpec | None
    specs: tuple[AnalysisSpec, ...]
    site: SiteConfig
    policy: SitePolicy
    signed: bool
    bed: GenotypeFile
    clock: Clock | None = None
    #: Masks a secure-sum round's arrays (``exact``, ``distributed-dp``); None otherwise.
    sealer: Sealer | None = None
    #: Where the module declares the sample sets it sums over (disabled: accepts all).
    guard: ReleaseGuard = field(default_factory=ReleaseGuard.disabled)

    def declare(self, column: str, *sets: np.ndarray) -> None:
        """Declare the release's base sample sets and refuse now if they would expose anyone."""
        self.guard.declare(column, *sets)
        verdict = self.guard.check_declared()
        if not verdict.ok:
            raise PolicyRefusal(DISCLOSURE_RISK, disclosure_message(verdict))

    @property
    def analysis(self) -> AnalysisSpec:
        """The analysis this request serves (the path guarantees one for analysis requests)."""
        assert self.spec is not None
        return self.spec

    @property
    def mode(self) -> str:
        """The study's release mode."""
        return self.study.privacy.mode

    @property
    def directory(self) -> Path:
        """The site directory."""
        return self.site.directory

    def ledger(self) -> Ledger:
        """The site's privacy ledger (``NO_BUDGET`` when the policy has no budget)."""
        return ledger_for(self.site.directory, self.policy)

    @cached_property
    def variant_plan(self) -> tuple[np.ndarray, np.ndarray]:
        """The request's variants (indexes into the site's file) and allele flips, checked."""
        return variant_plan(self.inputs, self.bed.n_variants)


def variant_plan(inputs: NamedArrays, n_variants: int) -> tuple[np.ndarray, np.ndarray]:
    """A request's ``variant_index`` (int64) and ``flip``; ``BAD_REQUEST`` if malformed."""
    index = inputs.get("variant_index")
    flip = inputs.get("flip")
    if (
        index is None
        or flip is None
        or index.ndim != 1
        or index.shape != flip.shape
        or index.dtype.kind not in "iu"
        or flip.dtype != np.bool_
        or (index.size and (index.min() < 0 or index.max() >= n_variants))
    ):
        raise PolicyRefusal(BAD_REQUEST, "the request's variant plan is malformed")
    return index.astype(np.int64), flip


__all__ = ["Answer", "Charge", "Clock", "RequestContext", "Sealer", "Server", "variant_plan"]
