"""The site's side of a SecAgg+ round: Flower's ``secaggplus_mod``, with GenoFed's checks.

The coordinator sums the genotype counts of an ``exact`` or
``distributed-dp`` study with Flower's ``SecAggPlusWorkflow``: four ``TRAIN``
messages per round (setup, share keys, collect masked vectors, unmask). The
ClientApp's train handler passes each to :func:`answer_secure`, which runs
Flower's own ``secaggplus_mod`` (GenoFed implements no cryptography) and adds:

* **every stage**: the site's policy must allow a secure release mode
  (``exact`` or ``distributed-dp`` in ``allowed_release_modes``), or it
  takes no part (``RELEASE_MODE_NOT_ALLOWED``). What a key-exchange stage
  sends (public keys, encrypted key shares, seed shares: no data) is
  recorded in the audit log (``secagg_setup``, ``secagg_share_keys``,
  ``secagg_unmask``: SHA-256 of every value), before it leaves.
* **collect masked vectors**: the GenoFed request rides in the fit
  instruction (:func:`genofed.common.secure_sum.request_from_config`) and
  goes through :func:`genofed.site_agent.release.handle_request` like any
  other: signature, policy, cohort size, approval, audit.
  :class:`SecAggSealer` refuses a round with fewer than three participants
  or other settings than the exact-sum ones, and masks the counts with
  ``secaggplus_mod``; the release entry records the masked vector (names,
  shapes, SHA-256) and the mode, and the reply travels beside the masked
  vector with its receipt. A refusal goes back instead of a masked vector,
  and the coordinator leaves the site out of the round.
* **unmask**: the site gives its shares only for a sum of at least
  three sites' masked vectors (``TOO_FEW_SITES``): after sites drop out,
  the others' shares would otherwise unmask a sum that one site could
  subtract its own vector from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context, Message
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitRes, bytes_to_ndarray, ndarrays_to_parameters
from flwr.common import Status as FlowerStatus
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    RECORD_KEY_STATE,
    Key,
    Stage,
)
from flwr.compat.common import recorddict_compat as compat

import genofed
from genofed.common.errors import ConfigError, GenoFedError, IntegrityError, PolicyRefusal
from genofed.common.messages import ArraySpec, Reply, Request, Status
from genofed.common.reasons import (
    INTEGRITY,
    POLICY_INVALID,
    RELEASE_MODE_NOT_ALLOWED,
    SECURE_AGGREGATION_SETTINGS,
    TOO_FEW_SITES,
)
from genofed.common.secure_sum import (
    MIN_SECURE_SITES,
    NUM_EXAMPLES,
    PROTO_FIELD,
    masked_arrays,
    request_from_config,
    settings_problem,
)
from genofed.common.study import SECURE_MODES
from genofed.common.wire.proto import reply_to_bytes
from genofed.common.wire.records import REPLY_KEY, NamedArrays, array_spec, reply_to_recorddict
from genofed.site_agent.audit.log import DECISION_REFUSED, AuditLog, refusal_entry, release_entry
from genofed.site_agent.privacy.policy import POLICY_FILE, load_policy
from genofed.site_agent.release import handle_request

log = logging.getLogger("genofed.site")

#: The fit instruction's config record (Flower's legacy FitIns encoding).
FITINS_CONFIG = "fitins.config"
#: The site's own record of the current SecAgg+ round (in the Flower context's state).
_ROUND_RECORD = "genofed.secagg_round"
#: Audit request kinds of the key-exchange stages.
KEY_EXCHANGE_KINDS = {
    Stage.SETUP: "secagg_setup",
    Stage.SHARE_KEYS: "secagg_share_keys",
    Stage.UNMASK: "secagg_unmask",
}


class SecAggSealer:
    """Masks a site's counts with Flower's ``secaggplus_mod`` (collect-masked-vectors stage)."""

    def __init__(self, msg: Message, context: Context) -> None:
        self._msg = msg
        self._context = context
        #: the masked message secaggplus_mod built, once :meth:`seal` ran
        self.out: Message | None = None

    def check(self, min_participants: int) -> None:
        state = self._context.state.config_records.get(RECORD_KEY_STATE)
        if state is None or "sample_num" not in state:
            raise PolicyRefusal(
                SECURE_AGGREGATION_SETTINGS, "no SecAgg+ setup preceded this secure-sum request"
            )
        values = {}
        for key in ("sample_num", "clipping_range", "target_range", "mod_range", "max_weight"):
            value = state.get(key)
            if not isinstance(value, int | float):
                raise PolicyRefusal(
                    SECURE_AGGREGATION_SETTINGS, f"the SecAgg+ setup has no number {key!r}"
                )
            values[key] = value
        problem = settings_problem(
            sample_num=int(values["sample_num"]),
            clipping_range=float(values["clipping_range"]),
            target_range=int(values["target_range"]),
            mod_range=int(values["mod_range"]),
            max_weight=float(values["max_weight"]),
            min_participants=min_participants,
        )
        if problem is not None:
            raise PolicyRefusal(SECURE_AGGREGATION_SETTINGS, problem)
        # the unmask stage must not unmask a sum of fewer sites (_key_exchange)
        self._context.state.config_records[_ROUND_RECORD] = ConfigRecord(
            {"min_participants": max(MIN_SECURE_SITES, min_participants)}
        )

    def seal(self, vector: np.ndarray) -> NamedArrays:
        fitres = FitRes(
            status=FlowerStatus(code=Code.OK, message=""),
            parameters=ndarrays_to_parameters([np.asarray(vector, dtype=np.float64)]),
            num_examples=NUM_EXAMPLES,
            metrics={},
        )
        content = compat.fitres_to_recorddict(fitres, keep_input=False)

        def local_result(msg: Message, _context: Context) -> Message:
            return Message(content, reply_to=msg)

        self.out = secaggplus_mod(self._msg, self._context, local_result)
        masked = self.out.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]
        assert isinstance(masked, list)
        return masked_arrays([bytes_to_ndarray(b) for b in masked])  # type: ignore[arg-type]


def answer_secure(msg: Message, context: Context, site_dir: Path) -> Message:
    """Answer one SecAgg+ message for the site in ``site_dir``."""
    configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    stage = configs.get(Key.STAGE) if configs is not None else None
    if stage == Stage.COLLECT_MASKED_VECTORS:
        return _collect(msg, context, site_dir)
    if stage not in KEY_EXCHANGE_KINDS:
        raise GenoFedError(f"this site takes TRAIN messages only as SecAgg+ stages, not {stage!r}")
    return _key_exchange(msg, context, site_dir, str(stage))


def _collect(msg: Message, context: Context, site_dir: Path) -> Message:
    try:
        request, inputs = request_from_config(msg.content.config_records[FITINS_CONFIG])
    except (KeyError, IntegrityError):
        reply = Reply(
            status=Status.REFUSED,
            reason_code=INTEGRITY,
            message="malformed secure-sum request",
            software_version=genofed.__version__,
        )
        return Message(reply_to_recorddict(reply, {}), reply_to=msg)
    sealer = SecAggSealer(msg, context)
    reply, _masked = handle_request(site_dir, request, inputs, sealer=sealer)
    if reply.status != Status.OK or sealer.out is None:
        return Message(reply_to_recorddict(reply, {}), reply_to=msg)
    out = sealer.out
    # the reply (its manifest lists the masked arrays, its receipt cites their audit entry)
    out.content.config_records[REPLY_KEY] = ConfigRecord({PROTO_FIELD: reply_to_bytes(reply)})
    return out


def _key_exchange(msg: Message, context: Context, site_dir: Path, stage: str) -> Message:
    """A key-exchange stage: allowed by the policy, run by Flower, audited before it leaves."""
    request = Request(kind=KEY_EXCHANGE_KINDS[stage], step=stage, run_id=str(msg.metadata.run_id))
    with AuditLog.open(site_dir) as audit:
        try:
            policy = load_policy(site_dir / POLICY_FILE)
        except ConfigError as exc:
            audit.append(refusal_entry(request, decision=DECISION_REFUSED, reason=str(exc)))
            raise PolicyRefusal(
                POLICY_INVALID, f"this site's policy file is invalid: {exc}"
            ) from exc
        if not policy.allowed_release_modes & set(SECURE_MODES):
            reason = (
                "this site's policy allows no secure release mode "
                f"({' or '.join(SECURE_MODES)}), so it takes no part in SecAgg+"
            )
            audit.append(refusal_entry(request, decision=DECISION_REFUSED, reason=reason))
            raise PolicyRefusal(RELEASE_MODE_NOT_ALLOWED, reason)
        survivors = _unmask_survivors(msg) if stage == Stage.UNMASK else None
        needed = _min_participants(context)
        if survivors is not None and survivors < needed:
            reason = (
                f"the coordinator asked for the shares that unmask a sum of {survivors} sites; "
                f"this site unmasks only sums of at least {needed} (with fewer, a site could "
                "subtract its own vector and learn another's, or the sum would carry less "
                "than the study's noise shares)"
            )
            audit.append(refusal_entry(request, decision=DECISION_REFUSED, reason=reason))
            raise PolicyRefusal(TOO_FEW_SITES, reason)

        def no_app(_msg: Message, _context: Context) -> Message:
            raise GenoFedError("a key-exchange stage never runs the site's analysis")

        out = secaggplus_mod(msg, context, no_app)
        sent = out.content.config_records[RECORD_KEY_CONFIGS]
        audit.append(release_entry(request, _manifest(sent)))
    log.info("SecAgg+ %s stage answered (run %s)", stage, msg.metadata.run_id)
    return out


def _unmask_survivors(msg: Message) -> int:
    """How many sites' masked vectors the unmask stage's sum holds (its active node list)."""
    configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    active = configs.get(Key.ACTIVE_NODE_ID_LIST) if configs is not None else None
    return len(active) if isinstance(active, list) else 0


def _min_participants(context: Context) -> int:
    """Fewest masked vectors this round's sum may hold: 3, or the study's noise shares."""
    record = context.state.config_records.get(_ROUND_RECORD)
    value = record.get("min_participants") if record is not None else None
    return max(MIN_SECURE_SITES, value) if isinstance(value, int) else MIN_SECURE_SITES


def _manifest(record: ConfigRecord) -> list[ArraySpec]:
    """Names, sizes and SHA-256 of every bytes value a key-exchange stage sends."""
    specs: list[ArraySpec] = []
    for key in sorted(record):
        values = record[key]
        items = values if isinstance(values, list) else [values]
        for i, value in enumerate(items):
            data = value if isinstance(value, bytes) else str(value).encode()
            specs.append(array_spec(f"{key}[{i}]", np.frombuffer(data, dtype=np.uint8)))
    return specs


__all__ = ["FITINS_CONFIG", "KEY_EXCHANGE_KINDS", "SecAggSealer", "answer_secure"]
