from genofed.protos.v1 import genofed_pb2 as _genofed_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SiteStatus(_message.Message):
    __slots__ = ("site", "software_version", "started", "pid", "superlink", "demo_policy", "allowed_analyses", "audit_entries", "audit_key_id", "latest_checkpoint", "cohort_snapshot", "disclosure_guard")
    SITE_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    SUPERLINK_FIELD_NUMBER: _ClassVar[int]
    DEMO_POLICY_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ANALYSES_FIELD_NUMBER: _ClassVar[int]
    AUDIT_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    AUDIT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LATEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    COHORT_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DISCLOSURE_GUARD_FIELD_NUMBER: _ClassVar[int]
    site: str
    software_version: str
    started: str
    pid: int
    superlink: str
    demo_policy: bool
    allowed_analyses: _containers.RepeatedScalarFieldContainer[str]
    audit_entries: int
    audit_key_id: str
    latest_checkpoint: _genofed_pb2.Checkpoint
    cohort_snapshot: str
    disclosure_guard: str
    def __init__(self, site: _Optional[str] = ..., software_version: _Optional[str] = ..., started: _Optional[str] = ..., pid: _Optional[int] = ..., superlink: _Optional[str] = ..., demo_policy: _Optional[bool] = ..., allowed_analyses: _Optional[_Iterable[str]] = ..., audit_entries: _Optional[int] = ..., audit_key_id: _Optional[str] = ..., latest_checkpoint: _Optional[_Union[_genofed_pb2.Checkpoint, _Mapping]] = ..., cohort_snapshot: _Optional[str] = ..., disclosure_guard: _Optional[str] = ...) -> None: ...

class StudiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StudyRecord(_message.Message):
    __slots__ = ("study_sha256", "study_name", "status", "reason", "decided_by", "decided_at", "first_seen", "n_requests", "n_releases", "n_refusals", "epsilon_charged", "analyst", "epsilon_composed", "epsilon_charges")
    STUDY_SHA256_FIELD_NUMBER: _ClassVar[int]
    STUDY_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    N_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    N_RELEASES_FIELD_NUMBER: _ClassVar[int]
    N_REFUSALS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_CHARGED_FIELD_NUMBER: _ClassVar[int]
    ANALYST_FIELD_NUMBER: _ClassVar[int]
    EPSILON_COMPOSED_FIELD_NUMBER: _ClassVar[int]
    EPSILON_CHARGES_FIELD_NUMBER: _ClassVar[int]
    study_sha256: str
    study_name: str
    status: str
    reason: str
    decided_by: str
    decided_at: str
    first_seen: str
    n_requests: int
    n_releases: int
    n_refusals: int
    epsilon_charged: float
    analyst: str
    epsilon_composed: float
    epsilon_charges: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, study_sha256: _Optional[str] = ..., study_name: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[str] = ..., first_seen: _Optional[str] = ..., n_requests: _Optional[int] = ..., n_releases: _Optional[int] = ..., n_refusals: _Optional[int] = ..., epsilon_charged: _Optional[float] = ..., analyst: _Optional[str] = ..., epsilon_composed: _Optional[float] = ..., epsilon_charges: _Optional[_Iterable[float]] = ...) -> None: ...

class StudyList(_message.Message):
    __slots__ = ("studies", "source")
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    studies: _containers.RepeatedCompositeFieldContainer[StudyRecord]
    source: str
    def __init__(self, studies: _Optional[_Iterable[_Union[StudyRecord, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class BudgetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BudgetCharge(_message.Message):
    __slots__ = ("time", "period", "study_sha256", "analysis_id", "run_id", "mechanism", "noise_multiplier", "epsilon", "epsilon_spent_after")
    TIME_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    STUDY_SHA256_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    NOISE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    EPSILON_SPENT_AFTER_FIELD_NUMBER: _ClassVar[int]
    time: str
    period: str
    study_sha256: str
    analysis_id: str
    run_id: str
    mechanism: str
    noise_multiplier: float
    epsilon: float
    epsilon_spent_after: float
    def __init__(self, time: _Optional[str] = ..., period: _Optional[str] = ..., study_sha256: _Optional[str] = ..., analysis_id: _Optional[str] = ..., run_id: _Optional[str] = ..., mechanism: _Optional[str] = ..., noise_multiplier: _Optional[float] = ..., epsilon: _Optional[float] = ..., epsilon_spent_after: _Optional[float] = ...) -> None: ...

class BudgetReport(_message.Message):
    __slots__ = ("has_budget", "epsilon", "delta", "period", "current_period", "epsilon_spent", "charges")
    HAS_BUDGET_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PERIOD_FIELD_NUMBER: _ClassVar[int]
    EPSILON_SPENT_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    has_budget: bool
    epsilon: float
    delta: float
    period: str
    current_period: str
    epsilon_spent: float
    charges: _containers.RepeatedCompositeFieldContainer[BudgetCharge]
    def __init__(self, has_budget: _Optional[bool] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., period: _Optional[str] = ..., current_period: _Optional[str] = ..., epsilon_spent: _Optional[float] = ..., charges: _Optional[_Iterable[_Union[BudgetCharge, _Mapping]]] = ...) -> None: ...

class AuditEntriesRequest(_message.Message):
    __slots__ = ("start_index", "study_sha256")
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    STUDY_SHA256_FIELD_NUMBER: _ClassVar[int]
    start_index: int
    study_sha256: str
    def __init__(self, start_index: _Optional[int] = ..., study_sha256: _Optional[str] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
