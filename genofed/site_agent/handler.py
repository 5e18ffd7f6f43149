"""The site's answer to one coordinator request, independent of transport.

This is where a request meets the site's files and policy: check the study's
integrity, ask the policy, stream the genotypes through the local statistic,
and describe what leaves. The Flower ClientApp (``app.py``) only decodes the
message, calls :func:`handle_request` and encodes the reply.

What can leave a site, by request kind:

* ``variants``: the variant table (chromosome, position, ID, alleles) and the
  numbers of samples and variants. No sample data.
* ``genotype_counts``: per study variant, the numbers of samples with 0, 1
  and 2 copies of the study's ALT allele and with a missing call. It serves
  the ``freq``, ``hardy``, ``missing`` and ``gcount`` analyses named in the
  request, each of which the policy must allow.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

import genofed
from genofed.common.analyses import COUNT_KINDS, VARIANTS_KIND
from genofed.common.errors import GenoFedError, IntegrityError, PolicyRefusal
from genofed.common.records import NamedArrays, signature_from_proto, study_from_proto
from genofed.common.study import Study
from genofed.protos.v1 import genofed_pb2 as pb
from genofed.site_agent.io.plink import BedFile
from genofed.site_agent.policy import (
    POLICY_FILE,
    SitePolicy,
    check_request,
    check_study_signature,
    load_policy,
)
from genofed.site_agent.sitedir import SiteConfig, load_site
from genofed.site_agent.stats.genotype_counts import flip_counts, genotype_counts

log = logging.getLogger("genofed.site")

#: Request kind for per-variant genotype counts.
GENOTYPE_COUNTS_KIND = "genotype_counts"


def handle_request(
    site_dir: Path, request: pb.AnalysisRequest, inputs: NamedArrays
) -> tuple[pb.SiteReply, NamedArrays]:
    """Answer one request; never raises for a request the site declines."""
    reply = pb.SiteReply(
        analysis_id=request.analysis_id,
        step=request.step,
        study_sha256=request.study.study.sha256,
        software_version=genofed.__version__,
    )
    try:
        config = load_site(site_dir)
        reply.site = config.name
        policy = load_policy(site_dir / POLICY_FILE)
        study = study_from_proto(request.study.study)
        arrays = _dispatch(config, policy, study, request, inputs, reply)
    except PolicyRefusal as exc:
        log.warning("refused %s for study %s: %s", request.kind, request.study.study.sha256, exc)
        return _failed(reply, pb.REPLY_STATUS_REFUSED, exc.reason_code, str(exc)), {}
    except IntegrityError as exc:
        log.warning("integrity failure on %s request", request.kind)
        return _failed(reply, pb.REPLY_STATUS_REFUSED, "INTEGRITY", str(exc)), {}
    except GenoFedError as exc:
        log.error("could not answer %s: %s", request.kind, exc)
        return _failed(reply, pb.REPLY_STATUS_ERROR, type(exc).__name__.upper(), str(exc)), {}
    reply.status = pb.REPLY_STATUS_OK
    return reply, arrays


def _failed(reply: pb.SiteReply, status: int, code: str, message: str) -> pb.SiteReply:
    reply.status = status  # type: ignore[assignment]
    reply.reason_code = code
    reply.message = message
    return reply


def _dispatch(
    config: SiteConfig,
    policy: SitePolicy,
    study: Study,
    request: pb.AnalysisRequest,
    inputs: NamedArrays,
    reply: pb.SiteReply,
) -> NamedArrays:
    signed = (
        check_study_signature(
            policy, request.study.study.canonical_json, signature_from_proto(request.study)
        )
        is not None
    )
    with BedFile(config.genotypes) as bed:
        reply.facts["n_samples"] = str(bed.n_samples)
        reply.facts["n_variants"] = str(bed.n_variants)
        reply.facts["policy"] = "demo (synthetic data only)" if policy.demo else "site policy"
        if request.kind == VARIANTS_KIND:
            check_request(policy, kind=VARIANTS_KIND, signed=signed, n_samples=bed.n_samples)
            v = bed.variants
            return {"chrom": v.chrom, "pos": v.pos, "id": v.id, "ref": v.ref, "alt": v.alt}
        if request.kind == GENOTYPE_COUNTS_KIND:
            for kind in _served_kinds(study, request.analysis_id):
                check_request(policy, kind=kind, signed=signed, n_samples=bed.n_samples)
            index, flip = _variant_plan(inputs, bed.n_variants)
            counts = np.zeros((len(index), 4), dtype=np.int64)
            for start, dosages in bed.iter_dosages(index):
                counts[start : start + len(dosages)] = genotype_counts(dosages)
            return {"genotype_counts": flip_counts(counts, flip)}
    raise PolicyRefusal("UNKNOWN_REQUEST", f"this site does not know request kind {request.kind!r}")


def _served_kinds(study: Study, analysis_ids: str) -> list[str]:
    """The analysis kinds a counts request serves; each must be in the study."""
    by_id = {a.id: a.kind for a in study.analyses}
    kinds = []
    for ident in analysis_ids.split(","):
        kind = by_id.get(ident)
        if kind not in COUNT_KINDS:
            raise PolicyRefusal(
                "NOT_IN_STUDY", f"analysis {ident!r} is not a count analysis of this study"
            )
        kinds.append(kind)
    return kinds


def _variant_plan(inputs: NamedArrays, n_variants: int) -> tuple[np.ndarray, np.ndarray]:
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
        raise PolicyRefusal("BAD_REQUEST", "the request's variant plan is malformed")
    return index.astype(np.int64), flip


__all__ = ["GENOTYPE_COUNTS_KIND", "handle_request"]
