import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ColumnType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLUMN_TYPE_UNSPECIFIED: _ClassVar[ColumnType]
    COLUMN_TYPE_STRING: _ClassVar[ColumnType]
    COLUMN_TYPE_INTEGER: _ClassVar[ColumnType]
    COLUMN_TYPE_FLOAT: _ClassVar[ColumnType]
    COLUMN_TYPE_DECIMAL: _ClassVar[ColumnType]
    COLUMN_TYPE_BOOLEAN: _ClassVar[ColumnType]
    COLUMN_TYPE_DATE: _ClassVar[ColumnType]
    COLUMN_TYPE_DATETIME: _ClassVar[ColumnType]
    COLUMN_TYPE_BYTES: _ClassVar[ColumnType]
    COLUMN_TYPE_JSON: _ClassVar[ColumnType]
COLUMN_TYPE_UNSPECIFIED: ColumnType
COLUMN_TYPE_STRING: ColumnType
COLUMN_TYPE_INTEGER: ColumnType
COLUMN_TYPE_FLOAT: ColumnType
COLUMN_TYPE_DECIMAL: ColumnType
COLUMN_TYPE_BOOLEAN: ColumnType
COLUMN_TYPE_DATE: ColumnType
COLUMN_TYPE_DATETIME: ColumnType
COLUMN_TYPE_BYTES: ColumnType
COLUMN_TYPE_JSON: ColumnType

class Column(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ColumnType
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ColumnType, str]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null_value", "string_value", "int_value", "float_value", "decimal_value", "bool_value", "date_value", "datetime_value", "bytes_value", "json_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DECIMAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    JSON_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: bool
    string_value: str
    int_value: int
    float_value: float
    decimal_value: str
    bool_value: bool
    date_value: str
    datetime_value: str
    bytes_value: bytes
    json_value: str
    def __init__(self, null_value: _Optional[bool] = ..., string_value: _Optional[str] = ..., int_value: _Optional[int] = ..., float_value: _Optional[float] = ..., decimal_value: _Optional[str] = ..., bool_value: _Optional[bool] = ..., date_value: _Optional[str] = ..., datetime_value: _Optional[str] = ..., bytes_value: _Optional[bytes] = ..., json_value: _Optional[str] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class DatasetHeader(_message.Message):
    __slots__ = ("dataset", "columns", "generation", "producer_step")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_STEP_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    generation: int
    producer_step: str
    def __init__(self, dataset: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., generation: _Optional[int] = ..., producer_step: _Optional[str] = ...) -> None: ...

class RowBatch(_message.Message):
    __slots__ = ("generation", "first_row", "rows")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    FIRST_ROW_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    generation: int
    first_row: int
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    def __init__(self, generation: _Optional[int] = ..., first_row: _Optional[int] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ...) -> None: ...

class DatasetEnd(_message.Message):
    __slots__ = ("generation", "row_count", "checksum", "finished_at")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    generation: int
    row_count: int
    checksum: str
    finished_at: _timestamp_pb2.Timestamp
    def __init__(self, generation: _Optional[int] = ..., row_count: _Optional[int] = ..., checksum: _Optional[str] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DatasetEntry(_message.Message):
    __slots__ = ("header", "batch", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: DatasetHeader
    batch: RowBatch
    end: DatasetEnd
    def __init__(self, header: _Optional[_Union[DatasetHeader, _Mapping]] = ..., batch: _Optional[_Union[RowBatch, _Mapping]] = ..., end: _Optional[_Union[DatasetEnd, _Mapping]] = ...) -> None: ...
