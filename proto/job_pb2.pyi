import datetime

from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportRef(_message.Message):
    __slots__ = ("namespace", "name", "uid")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    uid: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., uid: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "channel", "pattern", "task", "next", "report", "attempt", "max_attempts", "deadline", "trace_id", "step_index", "step_count", "rerun", "failure")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_COUNT_FIELD_NUMBER: _ClassVar[int]
    RERUN_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    channel: str
    pattern: str
    task: _any_pb2.Any
    next: Job
    report: ReportRef
    attempt: int
    max_attempts: int
    deadline: _timestamp_pb2.Timestamp
    trace_id: str
    step_index: int
    step_count: int
    rerun: bool
    failure: str
    def __init__(self, name: _Optional[str] = ..., channel: _Optional[str] = ..., pattern: _Optional[str] = ..., task: _Optional[_Union[_any_pb2.Any, _Mapping]] = ..., next: _Optional[_Union[Job, _Mapping]] = ..., report: _Optional[_Union[ReportRef, _Mapping]] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_id: _Optional[str] = ..., step_index: _Optional[int] = ..., step_count: _Optional[int] = ..., rerun: _Optional[bool] = ..., failure: _Optional[str] = ...) -> None: ...
