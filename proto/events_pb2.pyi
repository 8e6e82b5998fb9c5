import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from goreports.proto import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATE_UNSPECIFIED: _ClassVar[StepState]
    STEP_STATE_PENDING: _ClassVar[StepState]
    STEP_STATE_RUNNING: _ClassVar[StepState]
    STEP_STATE_SUCCEEDED: _ClassVar[StepState]
    STEP_STATE_RETRYING: _ClassVar[StepState]
    STEP_STATE_FAILED: _ClassVar[StepState]
    STEP_STATE_CANCELLED: _ClassVar[StepState]
STEP_STATE_UNSPECIFIED: StepState
STEP_STATE_PENDING: StepState
STEP_STATE_RUNNING: StepState
STEP_STATE_SUCCEEDED: StepState
STEP_STATE_RETRYING: StepState
STEP_STATE_FAILED: StepState
STEP_STATE_CANCELLED: StepState

class Artifact(_message.Message):
    __slots__ = ("name", "location", "size", "sha256", "content_type", "url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    location: str
    size: int
    sha256: str
    content_type: str
    url: str
    def __init__(self, name: _Optional[str] = ..., location: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., content_type: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class StageEvent(_message.Message):
    __slots__ = ("report", "step", "pattern", "state", "rows", "artifacts", "error", "reason", "at", "attempt", "step_index", "step_count", "trace_id", "worker", "duration_seconds", "message")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    report: _job_pb2.ReportRef
    step: str
    pattern: str
    state: StepState
    rows: int
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    error: str
    reason: str
    at: _timestamp_pb2.Timestamp
    attempt: int
    step_index: int
    step_count: int
    trace_id: str
    worker: str
    duration_seconds: float
    message: str
    def __init__(self, report: _Optional[_Union[_job_pb2.ReportRef, _Mapping]] = ..., step: _Optional[str] = ..., pattern: _Optional[str] = ..., state: _Optional[_Union[StepState, str]] = ..., rows: _Optional[int] = ..., artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., error: _Optional[str] = ..., reason: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., step_index: _Optional[int] = ..., step_count: _Optional[int] = ..., trace_id: _Optional[str] = ..., worker: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...
