"""The SecAgg+ rounds of ``exact`` and ``distributed-dp`` studies, for the runner.

The runner sends the same per-site requests as in ``plain`` mode; instead of
one reply per site with its arrays, each round runs Flower's SecAgg+
(:mod:`genofed.coordinator.secure_round`) and the coordinator learns only
the sum. :class:`SecureCounts` checks up front that the study can run
securely (at least three sites, a transport with SecAgg+) and keeps each
round's sum. The counts round's sum is checked (:meth:`SecureCounts.total`:
shape, and in ``exact`` mode that every variant's four cells add up to the
pooled sample count the sites reported in round 1); every other round's is
decoded from fixed point (:meth:`SecureCounts.decoded`) into the sum of the
sites' summable forms (:mod:`genofed.common.wire.summable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from genofed.common.errors import GenoFedError, SiteFailure
from genofed.common.fixed_point import decode, layout_from_text
from genofed.common.messages import Reply
from genofed.common.reasons import BAD_REPLY
from genofed.common.secure_sum import MAX_SECURE_SITES, MIN_SECURE_SITES, SECAGG_LAYOUT_FACT
from genofed.common.study import SECURE_MODES, Study
from genofed.common.wire.records import NamedArrays
from genofed.coordinator.transport import (
    Incoming,
    Outgoing,
    SecureExchange,
    SecureTransport,
    Transport,
)

log = logging.getLogger("genofed.coordinator")


class SecureCounts:
    """One secure-sum counts round; :meth:`send` is the round's exchange.

    A site that refuses, fails or stays silent leaves the round as SecAgg+
    allows (:mod:`genofed.coordinator.secure_round`): :meth:`send` returns
    its failure among the replies, like a plain exchange, so the runner
    applies ``min_sites``; the sum covers the other sites, or there is none
    (:meth:`has_sum`) when SecAgg+ could not finish without it.
    """

    def __init__(
        self,
        study: Study,
        transport: Transport,
        n_sites: int,
        name_of: Callable[[int], str] = lambda node: f"node {node}",
    ) -> None:
        mode = study.privacy.mode
        if mode not in SECURE_MODES:
            raise ValueError(f"mode {mode!r} is not a secure-sum mode")
        if n_sites < MIN_SECURE_SITES:
            raise GenoFedError(
                f'[privacy] mode = "{mode}" sums counts with SecAgg+ over at least '
                f"{MIN_SECURE_SITES} sites, and {n_sites} are taking part: with fewer, a site "
                "could subtract its own counts from the sum and learn another's; add sites, or "
                'use mode = "dp" or "plain"'
            )
        shares = study.privacy.noise_shares
        if shares is not None and n_sites < shares:
            raise GenoFedError(
                f"the study splits its noise into noise_shares = {shares} site shares, and only "
                f"{n_sites} sites are taking part: the sum would carry less than the target "
                "noise, so the sites would refuse; lower noise_shares or add sites"
            )
        if n_sites > MAX_SECURE_SITES:
            raise GenoFedError(f"a secure sum takes at most {MAX_SECURE_SITES} sites")
        if not hasattr(transport, "secure_exchange"):
            raise GenoFedError(
                f'[privacy] mode = "{mode}" needs Flower\'s SecAgg+: run the study on the '
                "simulation engine (--simulation) or a deployment (--superlink)"
            )
        self._transport: SecureTransport = transport  # type: ignore[assignment]
        self._mode = mode
        self._name_of = name_of
        self._noise_shares = shares
        self._result: SecureExchange | None = None

    def send(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        if len(outgoing) < MIN_SECURE_SITES:
            raise GenoFedError(
                f"only {len(outgoing)} sites are left for the secure sum; it needs "
                f"{MIN_SECURE_SITES}"
            )
        result = self._transport.secure_exchange(outgoing, timeout=timeout)
        shares = self._noise_shares or 0
        if result.total is not None and len(outgoing) - len(result.failed) < shares:
            # sites left the round: the survivors' sum carries fewer noise shares than the study's
            log.warning("the secure sum holds fewer than noise_shares = %d sites; not used", shares)
            result = SecureExchange(result.incoming, None, result.failed)
        self._result = result
        return result.incoming

    def has_sum(self) -> bool:
        """Whether the last round gave a sum (over the sites that did not leave it)."""
        return self._result is not None and self._result.total is not None

    def vector(self) -> np.ndarray:
        """The last round's sum of the sites' vectors (integers)."""
        total = None if self._result is None else self._result.total
        if total is None:
            left = [self._name_of(n) for n in (self._result.failed if self._result else ())]
            need = max(MIN_SECURE_SITES, self._noise_shares or 0)
            raise GenoFedError(
                f"{', '.join(left) or 'a site'} left the secure-sum round, and too few sites "
                f"were left to unmask the others' sum (a secure sum holds at least {need} "
                "sites' vectors), so there is no sum; run the study again when the sites are back"
            )
        return total

    def decoded(self, replies: Sequence[Reply], sites: Sequence[str]) -> NamedArrays:
        """The last round's sum of the sites' summable forms (``exact`` mode, fixed point).

        Every site's reply must name the same layout (:data:`SECAGG_LAYOUT_FACT`);
        a site that names another is named in the error.
        """
        layouts = [r.facts.get(SECAGG_LAYOUT_FACT) for r in replies]
        for site, layout in zip(sites, layouts, strict=True):
            if layout is None or layout != layouts[0]:
                raise SiteFailure(
                    site,
                    BAD_REPLY,
                    "its masked vector's layout differs from the other sites' (or is missing): "
                    "the sites disagree on the request",
                )
        try:
            return decode(self.vector(), layout_from_text(str(layouts[0])))
        except ValueError as exc:
            raise GenoFedError(f"the secure sum cannot be decoded: {exc}") from exc

    def total(self, n_variants: int, n_samples: int | None) -> np.ndarray:
        """The checked sum; ``n_samples``: the pooled cohort size (exact mode checks rows)."""
        total = self.vector()
        if total.shape != (n_variants, 4):
            raise GenoFedError(
                f"the secure sum has shape {total.shape}, not ({n_variants}, 4); "
                "the sites and the coordinator disagree on the study's variants"
            )
        if self._mode == "exact" and n_samples is not None and total.size:
            rows = total.sum(axis=1)
            if total.min() < 0 or not np.all(rows == n_samples):
                raise GenoFedError(
                    "the secure sum is not a table of counts (a variant's cells do not add up "
                    f"to the {n_samples} samples the sites reported); it is not used"
                )
        return total.astype(np.int64)


__all__ = ["SecureCounts"]
