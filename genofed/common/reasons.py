"""Reason codes: why a site refused or failed a request, or the coordinator a site's reply.

A code travels as ``Reply.reason_code`` and ``PolicyRefusal.reason_code``, is
written into audit entries (``CODE: message``), events and reports, and each
constant's value is its own name, on the wire as in the tables. The privacy
officer's guide (``docs/privacy-officer.md``) explains each code and its fix;
``tests/unit/test_reason_codes.py`` keeps this module, the code and that table
in step.

A site that fails a request on any other :class:`~genofed.common.errors.GenoFedError`
replies with the exception's class name in capitals (``INPUTERROR``,
``CONFIGERROR``): those are not listed here.
"""

from __future__ import annotations

from typing import Final

# The app gate (before a bundle runs)

#: The app bundle's hash is not in the site's ``allowed_app_hashes``.
APP_NOT_ALLOWED: Final = "APP_NOT_ALLOWED"
#: The app gate cannot read the site's policy file, so it refuses every bundle.
POLICY_UNREADABLE: Final = "POLICY_UNREADABLE"

# The site's policy, the study and its approval (before anything is computed)

#: The site has no ``policy.toml``, so it refuses every request.
NO_POLICY: Final = "NO_POLICY"
#: The site's ``policy.toml`` is invalid.
POLICY_INVALID: Final = "POLICY_INVALID"
#: The study is not signed by one of the site's trusted analysts.
UNSIGNED_STUDY: Final = "UNSIGNED_STUDY"
#: A signature, hash or message does not verify or decode (deliberately opaque).
INTEGRITY: Final = "INTEGRITY"
#: An analysis of the study is not in the site's ``allowed_analyses``.
ANALYSIS_NOT_ALLOWED: Final = "ANALYSIS_NOT_ALLOWED"
#: The study's release mode is not in the site's ``allowed_release_modes``.
RELEASE_MODE_NOT_ALLOWED: Final = "RELEASE_MODE_NOT_ALLOWED"
#: A ``dp`` (or DP-SGD) release is asked of a site that has no privacy budget.
NO_BUDGET: Final = "NO_BUDGET"
#: The site releases these statistics only masked by SecAgg+, and the request is not.
SECURE_AGGREGATION_REQUIRED: Final = "SECURE_AGGREGATION_REQUIRED"
#: An analysis parameter is outside the site's ``[policy.analysis.<kind>]`` bounds.
PARAMETER_OUT_OF_BOUNDS: Final = "PARAMETER_OUT_OF_BOUNDS"
#: The site's cohort (or an analysis's sub-cohort) is below its minimum size.
COHORT_TOO_SMALL: Final = "COHORT_TOO_SMALL"
#: The study's ``[cohort]`` filters on a column the site's policy does not allow.
COHORT_COLUMN_NOT_ALLOWED: Final = "COHORT_COLUMN_NOT_ALLOWED"
#: The study's ``[cohort]`` names a column the site's tables do not hold.
COHORT_COLUMN_UNKNOWN: Final = "COHORT_COLUMN_UNKNOWN"
#: The site cannot read its study approvals database.
APPROVALS_UNAVAILABLE: Final = "APPROVALS_UNAVAILABLE"
#: The study's hash waits for the site's privacy officer to approve it.
PENDING_APPROVAL: Final = "PENDING_APPROVAL"
#: The site's privacy officer refused the study's hash.
STUDY_REFUSED: Final = "STUDY_REFUSED"

# The request itself

#: The site does not know the request's kind.
UNKNOWN_REQUEST: Final = "UNKNOWN_REQUEST"
#: The request names an analysis that the study does not have, or not of its kind.
NOT_IN_STUDY: Final = "NOT_IN_STUDY"
#: The analysis does not run in the study's release mode.
UNSUPPORTED: Final = "UNSUPPORTED"
#: The site's install lacks the packages the analysis needs (``train``: ``genofed[train]``).
NOT_INSTALLED: Final = "NOT_INSTALLED"
#: The request's inputs are malformed or do not fit the analysis or the site's state.
BAD_REQUEST: Final = "BAD_REQUEST"

# The release (after the statistics are computed, before they leave)

#: The release would let someone subtract sums down to a few people (disclosure guard).
DISCLOSURE_RISK: Final = "DISCLOSURE_RISK"
#: A pca step would pass the site's ``pca_max_directions`` for its cohort snapshot.
PCA_DIRECTIONS_EXCEEDED: Final = "PCA_DIRECTIONS_EXCEEDED"
#: A survival analysis has events at the site, but fewer than its minimum cell count.
TOO_FEW_EVENTS: Final = "TOO_FEW_EVENTS"
#: A ``dp`` release would overspend the site's privacy budget for the period.
BUDGET_EXCEEDED: Final = "BUDGET_EXCEEDED"
#: The SecAgg+ setup is missing, or its settings are not the ones the site requires.
SECURE_AGGREGATION_SETTINGS: Final = "SECURE_AGGREGATION_SETTINGS"
#: A value of the reply cannot be carried in the fixed-point encoding of a secure sum.
VALUE_OUT_OF_RANGE: Final = "VALUE_OUT_OF_RANGE"
#: SecAgg+ would unmask a sum of fewer sites than the site allows.
TOO_FEW_SITES: Final = "TOO_FEW_SITES"
#: The site cannot write its audit log, so nothing but this error leaves.
AUDIT_UNAVAILABLE: Final = "AUDIT_UNAVAILABLE"

# The coordinator, about a site's reply

#: The site sent no reply (it dropped out, or the connection was lost).
NO_REPLY: Final = "NO_REPLY"
#: The site's reply failed without a reason code.
FAILED: Final = "FAILED"
#: The site's reply is malformed: its arrays or facts are not what the request asks for.
BAD_REPLY: Final = "BAD_REPLY"
#: The reply's receipt does not verify with the site's audit public key.
RECEIPT_INVALID: Final = "RECEIPT_INVALID"
#: The coordinator lists no audit public key for the site, so it cannot check its receipts.
NO_AUDIT_KEY: Final = "NO_AUDIT_KEY"

__all__ = [
    "ANALYSIS_NOT_ALLOWED",
    "APPROVALS_UNAVAILABLE",
    "APP_NOT_ALLOWED",
    "AUDIT_UNAVAILABLE",
    "BAD_REPLY",
    "BAD_REQUEST",
    "BUDGET_EXCEEDED",
    "COHORT_COLUMN_NOT_ALLOWED",
    "COHORT_COLUMN_UNKNOWN",
    "COHORT_TOO_SMALL",
    "DISCLOSURE_RISK",
    "FAILED",
    "INTEGRITY",
    "NOT_INSTALLED",
    "NOT_IN_STUDY",
    "NO_AUDIT_KEY",
    "NO_BUDGET",
    "NO_POLICY",
    "NO_REPLY",
    "PARAMETER_OUT_OF_BOUNDS",
    "PCA_DIRECTIONS_EXCEEDED",
    "PENDING_APPROVAL",
    "POLICY_INVALID",
    "POLICY_UNREADABLE",
    "RECEIPT_INVALID",
    "RELEASE_MODE_NOT_ALLOWED",
    "SECURE_AGGREGATION_REQUIRED",
    "SECURE_AGGREGATION_SETTINGS",
    "STUDY_REFUSED",
    "TOO_FEW_EVENTS",
    "TOO_FEW_SITES",
    "UNKNOWN_REQUEST",
    "UNSIGNED_STUDY",
    "UNSUPPORTED",
    "VALUE_OUT_OF_RANGE",
]
