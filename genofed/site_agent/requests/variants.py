"""``variants``: the site's variant table, for the harmonization round before every study.

Releases the chromosome, position, ID and alleles of every variant in the
site's genotype file. No sample data.
"""

from __future__ import annotations

from genofed.common.analyses import VARIANTS_KIND
from genofed.common.study import RELEASE_MODES
from genofed.site_agent.context import Answer, RequestContext, Server


def serve_variants(ctx: RequestContext) -> Answer:
    v = ctx.bed.variants
    return Answer({"chrom": v.chrom, "pos": v.pos, "id": v.id, "ref": v.ref, "alt": v.alt})


SERVER = Server(
    analyses=frozenset(),
    request_kinds=frozenset({VARIANTS_KIND}),
    modes=frozenset(RELEASE_MODES),
    unsupported="",
    serve=serve_variants,
)

__all__ = ["SERVER", "serve_variants"]
