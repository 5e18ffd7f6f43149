from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplyStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLY_STATUS_UNSPECIFIED: _ClassVar[ReplyStatus]
    REPLY_STATUS_OK: _ClassVar[ReplyStatus]
    REPLY_STATUS_REFUSED: _ClassVar[ReplyStatus]
    REPLY_STATUS_ERROR: _ClassVar[ReplyStatus]

class AuditKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIT_KIND_UNSPECIFIED: _ClassVar[AuditKind]
    AUDIT_KIND_REQUEST: _ClassVar[AuditKind]
    AUDIT_KIND_DECISION: _ClassVar[AuditKind]
    AUDIT_KIND_REFUSAL: _ClassVar[AuditKind]
    AUDIT_KIND_RELEASE: _ClassVar[AuditKind]
REPLY_STATUS_UNSPECIFIED: ReplyStatus
REPLY_STATUS_OK: ReplyStatus
REPLY_STATUS_REFUSED: ReplyStatus
REPLY_STATUS_ERROR: ReplyStatus
AUDIT_KIND_UNSPECIFIED: AuditKind
AUDIT_KIND_REQUEST: AuditKind
AUDIT_KIND_DECISION: AuditKind
AUDIT_KIND_REFUSAL: AuditKind
AUDIT_KIND_RELEASE: AuditKind

class Study(_message.Message):
    __slots__ = ("canonical_json", "sha256")
    CANONICAL_JSON_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    canonical_json: bytes
    sha256: str
    def __init__(self, canonical_json: _Optional[bytes] = ..., sha256: _Optional[str] = ...) -> None: ...

class SignedStudy(_message.Message):
    __slots__ = ("study", "signature", "analyst_public_key")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ANALYST_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    study: Study
    signature: bytes
    analyst_public_key: bytes
    def __init__(self, study: _Optional[_Union[Study, _Mapping]] = ..., signature: _Optional[bytes] = ..., analyst_public_key: _Optional[bytes] = ...) -> None: ...

class ArraySpec(_message.Message):
    __slots__ = ("name", "dtype", "shape", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    sha256: str
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., sha256: _Optional[str] = ...) -> None: ...

class AnalysisRequest(_message.Message):
    __slots__ = ("study", "analysis_id", "kind", "step", "round", "run_id", "inputs")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    study: SignedStudy
    analysis_id: str
    kind: str
    step: str
    round: int
    run_id: str
    inputs: _containers.RepeatedCompositeFieldContainer[ArraySpec]
    def __init__(self, study: _Optional[_Union[SignedStudy, _Mapping]] = ..., analysis_id: _Optional[str] = ..., kind: _Optional[str] = ..., step: _Optional[str] = ..., round: _Optional[int] = ..., run_id: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[ArraySpec, _Mapping]]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("tree_size", "root_hash", "time", "signature", "key_id")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    root_hash: bytes
    time: str
    signature: bytes
    key_id: str
    def __init__(self, tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., time: _Optional[str] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("audited", "audit_index", "checkpoint", "epsilon_charged", "delta_charged", "entry", "inclusion_proof")
    AUDITED_FIELD_NUMBER: _ClassVar[int]
    AUDIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    EPSILON_CHARGED_FIELD_NUMBER: _ClassVar[int]
    DELTA_CHARGED_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PROOF_FIELD_NUMBER: _ClassVar[int]
    audited: bool
    audit_index: int
    checkpoint: Checkpoint
    epsilon_charged: float
    delta_charged: float
    entry: bytes
    inclusion_proof: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, audited: _Optional[bool] = ..., audit_index: _Optional[int] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., epsilon_charged: _Optional[float] = ..., delta_charged: _Optional[float] = ..., entry: _Optional[bytes] = ..., inclusion_proof: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SiteReply(_message.Message):
    __slots__ = ("site", "study_sha256", "analysis_id", "step", "status", "reason_code", "message", "arrays", "facts", "receipt", "software_version")
    class FactsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SITE_FIELD_NUMBER: _ClassVar[int]
    STUDY_SHA256_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    site: str
    study_sha256: str
    analysis_id: str
    step: str
    status: ReplyStatus
    reason_code: str
    message: str
    arrays: _containers.RepeatedCompositeFieldContainer[ArraySpec]
    facts: _containers.ScalarMap[str, str]
    receipt: Receipt
    software_version: str
    def __init__(self, site: _Optional[str] = ..., study_sha256: _Optional[str] = ..., analysis_id: _Optional[str] = ..., step: _Optional[str] = ..., status: _Optional[_Union[ReplyStatus, str]] = ..., reason_code: _Optional[str] = ..., message: _Optional[str] = ..., arrays: _Optional[_Iterable[_Union[ArraySpec, _Mapping]]] = ..., facts: _Optional[_Mapping[str, str]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., software_version: _Optional[str] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("index", "time", "kind", "study_sha256", "analysis_id", "run_id", "decision", "reason", "arrays", "noise", "epsilon", "delta", "request_kind", "step", "round", "inputs", "sample_sets", "signer")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STUDY_SHA256_FIELD_NUMBER: _ClassVar[int]
    ANALYSIS_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ARRAYS_FIELD_NUMBER: _ClassVar[int]
    NOISE_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_KIND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SETS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    index: int
    time: str
    kind: AuditKind
    study_sha256: str
    analysis_id: str
    run_id: str
    decision: str
    reason: str
    arrays: _containers.RepeatedCompositeFieldContainer[ArraySpec]
    noise: str
    epsilon: float
    delta: float
    request_kind: str
    step: str
    round: int
    inputs: _containers.RepeatedCompositeFieldContainer[ArraySpec]
    sample_sets: _containers.RepeatedScalarFieldContainer[str]
    signer: str
    def __init__(self, index: _Optional[int] = ..., time: _Optional[str] = ..., kind: _Optional[_Union[AuditKind, str]] = ..., study_sha256: _Optional[str] = ..., analysis_id: _Optional[str] = ..., run_id: _Optional[str] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ..., arrays: _Optional[_Iterable[_Union[ArraySpec, _Mapping]]] = ..., noise: _Optional[str] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., request_kind: _Optional[str] = ..., step: _Optional[str] = ..., round: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[ArraySpec, _Mapping]]] = ..., sample_sets: _Optional[_Iterable[str]] = ..., signer: _Optional[str] = ...) -> None: ...
