"""The coordinator checks every site's receipt against the site's published audit key.

A :class:`ReceiptCheck` holds one Ed25519 audit public key per site name
(each site's ``state/audit.pub``) and a mode:

* ``require`` (deployment's default): a reply whose receipt is missing or does
  not verify (:func:`genofed.common.receipts.verify_receipt`), or that comes
  from a site with no key listed, is replaced by an error reply
  (``RECEIPT_INVALID`` or ``NO_AUDIT_KEY``): nothing from it is used, and the
  study protocol treats the site as failed (the study stops with an error
  naming the site, or drops it where ``min_sites`` allows).
* ``warn`` (the simulation engine and the demo): the same checks, but a
  failure is logged as a warning and recorded in ``provenance.json``.

:meth:`ReceiptCheck.wrap` puts the check in front of any
:class:`~genofed.coordinator.transport.Transport`, so every reply the
study protocol sees has passed it; :meth:`ReceiptCheck.annotate` writes the
outcome of each check next to its receipt in the site records that become
``provenance.json``.

Deployment reads the keys from ``coordinator.toml``::

    [receipts]
    mode = "require"                    # or "warn" (test setups only)

    [receipts.audit_keys]               # one line per site: its state/audit.pub
    site-a = "keys/site-a.audit.pub"
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genofed.common.checkpoint import key_id, public_key_from_pem
from genofed.common.errors import ConfigError, InputError, IntegrityError
from genofed.common.messages import Reply, Request, Status
from genofed.common.reasons import NO_AUDIT_KEY, RECEIPT_INVALID
from genofed.common.receipts import verify_receipt
from genofed.common.tomlconfig import check_keys, get_typed
from genofed.coordinator.site_record import SiteRecord
from genofed.coordinator.transport import (
    Incoming,
    Outgoing,
    ReplyFn,
    SecureExchange,
    StreamingTransport,
    Transport,
)

log = logging.getLogger("genofed.coordinator")

REQUIRE = "require"
WARN = "warn"
MODES = (REQUIRE, WARN)
#: Outcome recorded for a receipt that verified.
VERIFIED = "verified"
_KEYS_HINT = (
    "list the site's audit public key (its state/audit.pub) under [receipts.audit_keys] "
    "in coordinator.toml"
)


@dataclass
class ReceiptCheck:
    """Audit keys by site name, a mode, and the outcome of every check made."""

    keys: Mapping[str, Ed25519PublicKey]
    mode: str = REQUIRE
    outcomes: dict[tuple[str, int], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"receipt mode must be one of {MODES}, not {self.mode!r}")

    def check(self, request: Request, reply: Reply) -> Reply | None:
        """Verify one OK reply's receipt.

        Returns None when the reply may be used: its receipt verified, or it
        did not and the mode is ``warn`` (logged and recorded). In ``require``
        mode a failure returns the error reply to use instead, naming the
        problem, so that the study protocol treats the site as failed.
        """
        site = reply.site
        key = self.keys.get(site)
        if key is None:
            code, problem = NO_AUDIT_KEY, "no audit public key is listed for this site"
        else:
            try:
                verify_receipt(key, request, reply)
            except IntegrityError:
                code, problem = (
                    RECEIPT_INVALID,
                    f"the reply's receipt does not verify with the site's audit key "
                    f"{key_id(key)} (missing, altered, or not in the site's signed log)",
                )
            else:
                self.outcomes[(site, reply.receipt.audit_index)] = VERIFIED
                return None
        if self.mode == REQUIRE:
            hint = _KEYS_HINT if code == NO_AUDIT_KEY else "ask the site to verify its audit log"
            log.error("site %r: %s: %s; reply refused", site, code, problem)
            return Reply(
                site=site,
                study_sha256=reply.study_sha256,
                analysis_id=reply.analysis_id,
                step=reply.step,
                status=Status.ERROR,
                reason_code=code,
                message=f"{problem}; the coordinator refuses the reply (fix: {hint})",
                software_version=reply.software_version,
            )
        log.warning("site %r: %s: %s (receipts in warn mode: going on)", site, code, problem)
        self.outcomes[(site, reply.receipt.audit_index)] = f"NOT VERIFIED: {code}"
        return None

    def wrap(self, transport: Transport) -> Transport:
        """``transport`` with every OK reply checked before the protocol sees it."""
        return _CheckingTransport(transport, self)

    def annotate(self, sites: Sequence[SiteRecord]) -> None:
        """Add each check's outcome (``receipt_check``) to the receipts in ``sites``' replies."""
        for record in sites:
            for release in record.replies:
                receipt = release.get("receipt")
                if isinstance(receipt, dict):
                    index = receipt.get("audit_index")
                    found = (
                        self.outcomes.get((record.name, index)) if isinstance(index, int) else None
                    )
                    receipt["receipt_check"] = found or "NOT VERIFIED: no audited receipt"


class _CheckingTransport:
    def __init__(self, inner: Transport, check: ReceiptCheck) -> None:
        self._inner = inner
        self._check = check
        if hasattr(inner, "secure_exchange"):  # only what the inner transport can do
            self.secure_exchange = self._secure_exchange

    def nodes(self) -> list[int]:
        return self._inner.nodes()

    def exchange(self, outgoing: Mapping[int, Outgoing], *, timeout: float) -> dict[int, Incoming]:
        incoming = self._inner.exchange(outgoing, timeout=timeout)
        return {node: self._checked(outgoing, node, got) for node, got in incoming.items()}

    def exchange_streaming(
        self, outgoing: Mapping[int, Outgoing], *, timeout: float, on_reply: ReplyFn
    ) -> dict[int, Incoming]:
        """:meth:`exchange`, saying each reply (checked) as it arrives when the inner can."""
        checked: dict[int, Incoming] = {}

        def check_then_say(node: int, got: Incoming) -> None:
            if node not in checked:
                checked[node] = self._checked(outgoing, node, got)
                on_reply(node, checked[node])

        if isinstance(self._inner, StreamingTransport):
            incoming = self._inner.exchange_streaming(
                outgoing, timeout=timeout, on_reply=check_then_say
            )
        else:
            incoming = self._inner.exchange(outgoing, timeout=timeout)
        return {
            node: checked[node] if node in checked else self._checked(outgoing, node, got)
            for node, got in incoming.items()
        }

    def _checked(self, outgoing: Mapping[int, Outgoing], node: int, got: Incoming) -> Incoming:
        """``got``, or a refusal in its place when its receipt does not check."""
        if got.reply is not None and got.reply.status == Status.OK:
            refused = self._check.check(outgoing[node].request, got.reply)
            if refused is not None:
                return Incoming(refused)  # its arrays are not used
        return got

    def _secure_exchange(
        self, outgoing: Mapping[int, Outgoing], *, timeout: float
    ) -> SecureExchange:
        """The inner transport's secure-sum round, every OK reply's receipt checked."""
        result: SecureExchange = self._inner.secure_exchange(  # type: ignore[attr-defined]
            outgoing, timeout=timeout
        )
        checked = {}
        for node, got in result.incoming.items():
            if got.reply is not None and got.reply.status == Status.OK:
                refused = self._check.check(outgoing[node].request, got.reply)
                if refused is not None:
                    return SecureExchange(
                        {**result.incoming, node: Incoming(refused)}, None, (node,)
                    )
            checked[node] = got
        return SecureExchange(checked, result.total, result.failed)

    def __getattr__(self, name: str) -> object:  # e.g. GridTransport.wait_for_nodes
        return getattr(self._inner, name)


def load_audit_key(path: Path) -> Ed25519PublicKey:
    """A site's audit public key from its PEM file (``state/audit.pub``)."""
    if not path.is_file():
        raise InputError("audit public key not found", path=path, hint=_KEYS_HINT)
    return public_key_from_pem(path.read_bytes(), path=path)


def receipts_from_toml(table: object, *, path: Path) -> ReceiptCheck:
    """The ``[receipts]`` table of ``coordinator.toml`` (paths relative to ``path``'s folder).

    A missing table means ``require`` with no keys: every reply is refused
    until the keys are listed.
    """
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise ConfigError(
            "'receipts' must be a table ([receipts])",
            path=path,
            hint='write [receipts] on its own line, then mode = "require"',
        )
    check_keys(table, ("mode", "audit_keys"), path=path, where="[receipts]")
    mode = get_typed(table, "mode", str, REQUIRE, path=path, where="receipts")
    if mode not in MODES:
        raise ConfigError(
            f"[receipts] mode must be one of {', '.join(MODES)}, not {mode!r}",
            path=path,
            hint=f'use mode = "{REQUIRE}" (refuse replies whose receipt does not verify)',
        )
    listed = table.get("audit_keys", {})
    if not isinstance(listed, dict):
        raise ConfigError(
            "'receipts.audit_keys' must be a table of site = \"path/to/audit.pub\"",
            path=path,
            hint='write [receipts.audit_keys] then one line per site: site-a = "keys/a.pub"',
        )
    base = path.resolve().parent
    keys: dict[str, Ed25519PublicKey] = {}
    for site, value in listed.items():
        if not isinstance(value, str):
            raise ConfigError(
                f"[receipts.audit_keys] {site}: expected a path to the site's audit.pub",
                path=path,
                hint=f'write {site} = "keys/{site}.audit.pub" (the file the site gave you)',
            )
        file = Path(value).expanduser()
        file = file if file.is_absolute() else base / file
        try:
            keys[site] = load_audit_key(file)
        except InputError as exc:
            raise ConfigError(
                f"[receipts.audit_keys] {site}: cannot use {file}: {exc}",
                path=path,
                hint=f"put the site's state/audit.pub at {file}, or fix the path",
            ) from exc
    return ReceiptCheck(keys, mode)


__all__ = [
    "MODES",
    "REQUIRE",
    "VERIFIED",
    "WARN",
    "ReceiptCheck",
    "load_audit_key",
    "receipts_from_toml",
]
