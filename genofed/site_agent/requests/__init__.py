"""The site halves of the analyses: one module per analysis, found by request kind.

Each module here answers the requests of one analysis and registers itself
with a ``SERVER`` (:class:`~genofed.site_agent.context.Server`): the analysis
kinds and request kinds it answers, the release modes it can answer in, and
its ``serve`` function, which computes statistics from a
:class:`~genofed.site_agent.context.RequestContext` and returns an
:class:`~genofed.site_agent.context.Answer`. The checks every request needs
(signature, policy, approval, the analysis, its release mode) and the audit
are not here but in the one release path, :mod:`genofed.site_agent.release`.

Modules are imported when a request of theirs arrives: every request starts a
fresh ClientApp process in deployment, and torch (``train``) or scipy
(``prs``) would cost every other request a second of imports.

What each request kind releases is listed in :mod:`genofed.site_agent.release`.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType

from genofed.common.analyses import GENOTYPE_COUNTS_KIND, VARIANTS_KIND
from genofed.common.wire.glm import GLM_REQUEST_KINDS
from genofed.common.wire.pca import PCA_REQUEST_KINDS
from genofed.common.wire.pgx import PGX_REQUEST_KINDS
from genofed.common.wire.prs import PRS_REQUEST_KINDS
from genofed.common.wire.survival import SURVIVAL_REQUEST_KINDS
from genofed.common.wire.train import TRAIN_REQUEST_KINDS
from genofed.site_agent.context import Server

#: Request kinds by the module (under ``requests/``) that answers them.
MODULE_REQUESTS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "variants": frozenset({VARIANTS_KIND}),
        "counts": frozenset({GENOTYPE_COUNTS_KIND}),
        "glm": GLM_REQUEST_KINDS,
        "pca": PCA_REQUEST_KINDS,
        "prs": PRS_REQUEST_KINDS,
        "pgx": PGX_REQUEST_KINDS,
        "survival": SURVIVAL_REQUEST_KINDS,
        "train": TRAIN_REQUEST_KINDS,
    }
)
_MODULE_OF = {kind: module for module, kinds in MODULE_REQUESTS.items() for kind in kinds}


def server_for(request_kind: str) -> Server | None:
    """The server of a request kind (its module imported now), or None for an unknown kind."""
    module = _MODULE_OF.get(request_kind)
    if module is None:
        return None
    server: Server = importlib.import_module(f"{__name__}.{module}").SERVER
    return server


__all__ = ["MODULE_REQUESTS", "server_for"]
