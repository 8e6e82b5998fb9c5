from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetRef(_message.Message):
    __slots__ = ("name", "stream", "producer_step")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_STEP_FIELD_NUMBER: _ClassVar[int]
    name: str
    stream: str
    producer_step: str
    def __init__(self, name: _Optional[str] = ..., stream: _Optional[str] = ..., producer_step: _Optional[str] = ...) -> None: ...

class QueryParameter(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: _struct_pb2.Value
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("dataset", "readers")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    READERS_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetRef
    readers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[_Union[DatasetRef, _Mapping]] = ..., readers: _Optional[_Iterable[str]] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("name", "sql", "use_pagination", "pagination_key", "page_size", "parameters", "output")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SQL_FIELD_NUMBER: _ClassVar[int]
    USE_PAGINATION_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_KEY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    sql: str
    use_pagination: bool
    pagination_key: str
    page_size: int
    parameters: _containers.RepeatedCompositeFieldContainer[QueryParameter]
    output: Output
    def __init__(self, name: _Optional[str] = ..., sql: _Optional[str] = ..., use_pagination: _Optional[bool] = ..., pagination_key: _Optional[str] = ..., page_size: _Optional[int] = ..., parameters: _Optional[_Iterable[_Union[QueryParameter, _Mapping]]] = ..., output: _Optional[_Union[Output, _Mapping]] = ...) -> None: ...

class MysqlCollector(_message.Message):
    __slots__ = ("instance", "query_list", "db_name", "use_cache", "credentials_id", "cache_ttl_seconds", "host", "port", "connect_timeout_seconds", "read_timeout_seconds", "batch_rows")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    QUERY_LIST_FIELD_NUMBER: _ClassVar[int]
    DB_NAME_FIELD_NUMBER: _ClassVar[int]
    USE_CACHE_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    READ_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    instance: str
    query_list: _containers.RepeatedCompositeFieldContainer[Query]
    db_name: str
    use_cache: bool
    credentials_id: str
    cache_ttl_seconds: int
    host: str
    port: int
    connect_timeout_seconds: int
    read_timeout_seconds: int
    batch_rows: int
    def __init__(self, instance: _Optional[str] = ..., query_list: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., db_name: _Optional[str] = ..., use_cache: _Optional[bool] = ..., credentials_id: _Optional[str] = ..., cache_ttl_seconds: _Optional[int] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., connect_timeout_seconds: _Optional[int] = ..., read_timeout_seconds: _Optional[int] = ..., batch_rows: _Optional[int] = ...) -> None: ...

class SqliteCollector(_message.Message):
    __slots__ = ("instance", "database", "query_list", "batch_rows")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    QUERY_LIST_FIELD_NUMBER: _ClassVar[int]
    BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    instance: str
    database: str
    query_list: _containers.RepeatedCompositeFieldContainer[Query]
    batch_rows: int
    def __init__(self, instance: _Optional[str] = ..., database: _Optional[str] = ..., query_list: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., batch_rows: _Optional[int] = ...) -> None: ...

class HttpPagination(_message.Message):
    __slots__ = ("type", "next_link_path", "cursor_path", "cursor_param", "page_param", "start_page", "max_pages")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NEXT_LINK_PATH_FIELD_NUMBER: _ClassVar[int]
    CURSOR_PATH_FIELD_NUMBER: _ClassVar[int]
    CURSOR_PARAM_FIELD_NUMBER: _ClassVar[int]
    PAGE_PARAM_FIELD_NUMBER: _ClassVar[int]
    START_PAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_PAGES_FIELD_NUMBER: _ClassVar[int]
    type: str
    next_link_path: str
    cursor_path: str
    cursor_param: str
    page_param: str
    start_page: int
    max_pages: int
    def __init__(self, type: _Optional[str] = ..., next_link_path: _Optional[str] = ..., cursor_path: _Optional[str] = ..., cursor_param: _Optional[str] = ..., page_param: _Optional[str] = ..., start_page: _Optional[int] = ..., max_pages: _Optional[int] = ...) -> None: ...

class HttpApiCollector(_message.Message):
    __slots__ = ("instance", "url", "method", "headers", "query", "credentials_id", "auth_type", "auth_header", "records_path", "pagination", "timeout_seconds", "max_retries", "max_response_bytes", "allow_hosts", "output", "columns", "batch_rows")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class QueryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_TYPE_FIELD_NUMBER: _ClassVar[int]
    AUTH_HEADER_FIELD_NUMBER: _ClassVar[int]
    RECORDS_PATH_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_HOSTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ROWS_FIELD_NUMBER: _ClassVar[int]
    instance: str
    url: str
    method: str
    headers: _containers.ScalarMap[str, str]
    query: _containers.ScalarMap[str, str]
    credentials_id: str
    auth_type: str
    auth_header: str
    records_path: str
    pagination: HttpPagination
    timeout_seconds: int
    max_retries: int
    max_response_bytes: int
    allow_hosts: _containers.RepeatedScalarFieldContainer[str]
    output: Output
    columns: _containers.RepeatedScalarFieldContainer[str]
    batch_rows: int
    def __init__(self, instance: _Optional[str] = ..., url: _Optional[str] = ..., method: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., query: _Optional[_Mapping[str, str]] = ..., credentials_id: _Optional[str] = ..., auth_type: _Optional[str] = ..., auth_header: _Optional[str] = ..., records_path: _Optional[str] = ..., pagination: _Optional[_Union[HttpPagination, _Mapping]] = ..., timeout_seconds: _Optional[int] = ..., max_retries: _Optional[int] = ..., max_response_bytes: _Optional[int] = ..., allow_hosts: _Optional[_Iterable[str]] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., columns: _Optional[_Iterable[str]] = ..., batch_rows: _Optional[int] = ...) -> None: ...

class RowRule(_message.Message):
    __slots__ = ("name", "column", "claim")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    name: str
    column: str
    claim: str
    def __init__(self, name: _Optional[str] = ..., column: _Optional[str] = ..., claim: _Optional[str] = ...) -> None: ...

class JwtValidator(_message.Message):
    __slots__ = ("token_credentials_id", "token", "key_credentials_id", "algorithms", "audience", "issuer", "mode", "rules", "inputs", "outputs", "caller_tenant")
    TOKEN_CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHMS_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CALLER_TENANT_FIELD_NUMBER: _ClassVar[int]
    token_credentials_id: str
    token: str
    key_credentials_id: str
    algorithms: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    issuer: str
    mode: str
    rules: _containers.RepeatedCompositeFieldContainer[RowRule]
    inputs: _containers.RepeatedCompositeFieldContainer[DatasetRef]
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    caller_tenant: str
    def __init__(self, token_credentials_id: _Optional[str] = ..., token: _Optional[str] = ..., key_credentials_id: _Optional[str] = ..., algorithms: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ..., issuer: _Optional[str] = ..., mode: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[RowRule, _Mapping]]] = ..., inputs: _Optional[_Iterable[_Union[DatasetRef, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ..., caller_tenant: _Optional[str] = ...) -> None: ...

class AggregateFunction(_message.Message):
    __slots__ = ("column", "function")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    AS_FIELD_NUMBER: _ClassVar[int]
    column: str
    function: str
    def __init__(self, column: _Optional[str] = ..., function: _Optional[str] = ..., **kwargs) -> None: ...

class UnionOp(_message.Message):
    __slots__ = ("inputs",)
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[DatasetRef]
    def __init__(self, inputs: _Optional[_Iterable[_Union[DatasetRef, _Mapping]]] = ...) -> None: ...

class JoinOp(_message.Message):
    __slots__ = ("left", "right", "keys", "type")
    LEFT_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    left: DatasetRef
    right: DatasetRef
    keys: _containers.RepeatedScalarFieldContainer[str]
    type: str
    def __init__(self, left: _Optional[_Union[DatasetRef, _Mapping]] = ..., right: _Optional[_Union[DatasetRef, _Mapping]] = ..., keys: _Optional[_Iterable[str]] = ..., type: _Optional[str] = ...) -> None: ...

class GroupByOp(_message.Message):
    __slots__ = ("input", "keys", "aggregates")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATES_FIELD_NUMBER: _ClassVar[int]
    input: DatasetRef
    keys: _containers.RepeatedScalarFieldContainer[str]
    aggregates: _containers.RepeatedCompositeFieldContainer[AggregateFunction]
    def __init__(self, input: _Optional[_Union[DatasetRef, _Mapping]] = ..., keys: _Optional[_Iterable[str]] = ..., aggregates: _Optional[_Iterable[_Union[AggregateFunction, _Mapping]]] = ...) -> None: ...

class AggregateOperation(_message.Message):
    __slots__ = ("output", "union", "join", "group_by")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    UNION_FIELD_NUMBER: _ClassVar[int]
    JOIN_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    output: Output
    union: UnionOp
    join: JoinOp
    group_by: GroupByOp
    def __init__(self, output: _Optional[_Union[Output, _Mapping]] = ..., union: _Optional[_Union[UnionOp, _Mapping]] = ..., join: _Optional[_Union[JoinOp, _Mapping]] = ..., group_by: _Optional[_Union[GroupByOp, _Mapping]] = ...) -> None: ...

class Aggregator(_message.Message):
    __slots__ = ("operations", "passthrough", "passthrough_outputs")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    PASSTHROUGH_FIELD_NUMBER: _ClassVar[int]
    PASSTHROUGH_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[AggregateOperation]
    passthrough: _containers.RepeatedCompositeFieldContainer[DatasetRef]
    passthrough_outputs: _containers.RepeatedCompositeFieldContainer[Output]
    def __init__(self, operations: _Optional[_Iterable[_Union[AggregateOperation, _Mapping]]] = ..., passthrough: _Optional[_Iterable[_Union[DatasetRef, _Mapping]]] = ..., passthrough_outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ...) -> None: ...

class ColumnFormat(_message.Message):
    __slots__ = ("name", "number_format", "width", "header")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    name: str
    number_format: str
    width: float
    header: str
    def __init__(self, name: _Optional[str] = ..., number_format: _Optional[str] = ..., width: _Optional[float] = ..., header: _Optional[str] = ...) -> None: ...

class Sheet(_message.Message):
    __slots__ = ("name", "dataset", "columns")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dataset: DatasetRef
    columns: _containers.RepeatedCompositeFieldContainer[ColumnFormat]
    def __init__(self, name: _Optional[str] = ..., dataset: _Optional[_Union[DatasetRef, _Mapping]] = ..., columns: _Optional[_Iterable[_Union[ColumnFormat, _Mapping]]] = ...) -> None: ...

class ExcelGenerator(_message.Message):
    __slots__ = ("file_name", "sheets", "freeze_header", "auto_filter")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    SHEETS_FIELD_NUMBER: _ClassVar[int]
    FREEZE_HEADER_FIELD_NUMBER: _ClassVar[int]
    AUTO_FILTER_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    sheets: _containers.RepeatedCompositeFieldContainer[Sheet]
    freeze_header: bool
    auto_filter: bool
    def __init__(self, file_name: _Optional[str] = ..., sheets: _Optional[_Iterable[_Union[Sheet, _Mapping]]] = ..., freeze_header: _Optional[bool] = ..., auto_filter: _Optional[bool] = ...) -> None: ...

class MustacheGenerator(_message.Message):
    __slots__ = ("file_name", "template", "template_file", "template_dir", "datasets", "content_type", "unescaped_fields", "max_rows", "data")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FILE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_DIR_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    UNESCAPED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    template: str
    template_file: str
    template_dir: str
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetRef]
    content_type: str
    unescaped_fields: _containers.RepeatedScalarFieldContainer[str]
    max_rows: int
    data: _struct_pb2.Struct
    def __init__(self, file_name: _Optional[str] = ..., template: _Optional[str] = ..., template_file: _Optional[str] = ..., template_dir: _Optional[str] = ..., datasets: _Optional[_Iterable[_Union[DatasetRef, _Mapping]]] = ..., content_type: _Optional[str] = ..., unescaped_fields: _Optional[_Iterable[str]] = ..., max_rows: _Optional[int] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CsvGenerator(_message.Message):
    __slots__ = ("file_name", "dataset", "delimiter", "header")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DELIMITER_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    dataset: DatasetRef
    delimiter: str
    header: bool
    def __init__(self, file_name: _Optional[str] = ..., dataset: _Optional[_Union[DatasetRef, _Mapping]] = ..., delimiter: _Optional[str] = ..., header: _Optional[bool] = ...) -> None: ...

class ArtifactRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LocalDispatcher(_message.Message):
    __slots__ = ("path", "artifacts")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    path: str
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactRef]
    def __init__(self, path: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[ArtifactRef, _Mapping]]] = ...) -> None: ...

class S3Dispatcher(_message.Message):
    __slots__ = ("bucket", "prefix", "endpoint_url", "region", "credentials_id", "server_side_encryption", "kms_key_id", "metadata", "presign_seconds", "artifacts", "multipart_threshold_bytes")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_SIDE_ENCRYPTION_FIELD_NUMBER: _ClassVar[int]
    KMS_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRESIGN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    MULTIPART_THRESHOLD_BYTES_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    prefix: str
    endpoint_url: str
    region: str
    credentials_id: str
    server_side_encryption: str
    kms_key_id: str
    metadata: _containers.ScalarMap[str, str]
    presign_seconds: int
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactRef]
    multipart_threshold_bytes: int
    def __init__(self, bucket: _Optional[str] = ..., prefix: _Optional[str] = ..., endpoint_url: _Optional[str] = ..., region: _Optional[str] = ..., credentials_id: _Optional[str] = ..., server_side_encryption: _Optional[str] = ..., kms_key_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., presign_seconds: _Optional[int] = ..., artifacts: _Optional[_Iterable[_Union[ArtifactRef, _Mapping]]] = ..., multipart_threshold_bytes: _Optional[int] = ...) -> None: ...

class EmailDispatcher(_message.Message):
    __slots__ = ("to", "cc", "from_address", "subject", "body", "smtp_host", "smtp_port", "security", "credentials_id", "attach_limit_bytes", "link_base_url", "artifacts", "timeout_seconds")
    TO_FIELD_NUMBER: _ClassVar[int]
    CC_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SMTP_HOST_FIELD_NUMBER: _ClassVar[int]
    SMTP_PORT_FIELD_NUMBER: _ClassVar[int]
    SECURITY_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    ATTACH_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    LINK_BASE_URL_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    to: _containers.RepeatedScalarFieldContainer[str]
    cc: _containers.RepeatedScalarFieldContainer[str]
    from_address: str
    subject: str
    body: str
    smtp_host: str
    smtp_port: int
    security: str
    credentials_id: str
    attach_limit_bytes: int
    link_base_url: str
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactRef]
    timeout_seconds: int
    def __init__(self, to: _Optional[_Iterable[str]] = ..., cc: _Optional[_Iterable[str]] = ..., from_address: _Optional[str] = ..., subject: _Optional[str] = ..., body: _Optional[str] = ..., smtp_host: _Optional[str] = ..., smtp_port: _Optional[int] = ..., security: _Optional[str] = ..., credentials_id: _Optional[str] = ..., attach_limit_bytes: _Optional[int] = ..., link_base_url: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[ArtifactRef, _Mapping]]] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class WebhookDispatcher(_message.Message):
    __slots__ = ("url", "credentials_id", "send_file", "timeout_seconds", "max_retries", "allow_hosts", "headers", "artifacts")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    URL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    SEND_FILE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_HOSTS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    url: str
    credentials_id: str
    send_file: bool
    timeout_seconds: int
    max_retries: int
    allow_hosts: _containers.RepeatedScalarFieldContainer[str]
    headers: _containers.ScalarMap[str, str]
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactRef]
    def __init__(self, url: _Optional[str] = ..., credentials_id: _Optional[str] = ..., send_file: _Optional[bool] = ..., timeout_seconds: _Optional[int] = ..., max_retries: _Optional[int] = ..., allow_hosts: _Optional[_Iterable[str]] = ..., headers: _Optional[_Mapping[str, str]] = ..., artifacts: _Optional[_Iterable[_Union[ArtifactRef, _Mapping]]] = ...) -> None: ...

class DriveDispatcher(_message.Message):
    __slots__ = ("folder_id", "credentials_id", "token_uri", "upload_url", "artifacts")
    FOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_URI_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    folder_id: str
    credentials_id: str
    token_uri: str
    upload_url: str
    artifacts: _containers.RepeatedCompositeFieldContainer[ArtifactRef]
    def __init__(self, folder_id: _Optional[str] = ..., credentials_id: _Optional[str] = ..., token_uri: _Optional[str] = ..., upload_url: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[ArtifactRef, _Mapping]]] = ...) -> None: ...

class Notifier(_message.Message):
    __slots__ = ("when", "email", "webhook")
    WHEN_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    when: _containers.RepeatedScalarFieldContainer[str]
    email: EmailDispatcher
    webhook: WebhookDispatcher
    def __init__(self, when: _Optional[_Iterable[str]] = ..., email: _Optional[_Union[EmailDispatcher, _Mapping]] = ..., webhook: _Optional[_Union[WebhookDispatcher, _Mapping]] = ...) -> None: ...
