"""Spec -> Job chain: turn a validated ReportRequest into the nested protobuf `Job`s of the bus.

Why: the operator (in the cluster) and `goreports run` (on a laptop) must start exactly the same
chain from the same spec, and the workers must never have to understand the spec. So this pure
function does all the spec-level reasoning once: the step order, which dataset stream each step
reads and writes (a validator rewrites datasets, an aggregator adds new ones), who reads each
stream (so producers can throttle and trim), which artifacts a dispatcher delivers, and the
defaults. What the schema cannot see (names that refer to other steps) is checked here, with
field paths, and every error is reported at once.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2, struct_pb2
from google.protobuf.message import Message

from goreports.core import custom_task
from goreports.core.errors import FieldError, SpecError
from goreports.core.keys import Keys
from goreports.proto import job_pb2
from goreports.proto import tasks_pb2 as tpb

FAMILIES = ("collectors", "validators", "aggregators", "generators", "dispatchers", "notifiers")
CUSTOM_CHANNEL = "custom"
DEFAULT_DEADLINE_SECONDS = 3600
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_NOTIFY_ON = ("success", "failure")
EXCEL_SHEET_NAME_MAX = 31


@dataclass(frozen=True)
class Stage:
    """Where a stage kind's jobs go by default."""

    channel: str
    pattern: str

    @property
    def rank(self) -> int | None:
        """Position of the family in the step order; None for custom stages (anywhere)."""
        return FAMILIES.index(self.channel) if self.channel in FAMILIES else None


STAGES: dict[str, Stage] = {
    "sqlite": Stage("collectors", "sqlite"),
    "mysql": Stage("collectors", "mysql"),
    "http": Stage("collectors", "http"),
    "jwt": Stage("validators", "jwt"),
    "aggregate": Stage("aggregators", "aggregate"),
    "excel": Stage("generators", "excel"),
    "mustache": Stage("generators", "mustache"),
    "csv": Stage("generators", "csv"),
    "local": Stage("dispatchers", "local"),
    "s3": Stage("dispatchers", "s3"),
    "email": Stage("dispatchers", "email"),
    "webhook": Stage("dispatchers", "webhook"),
    "drive": Stage("dispatchers", "drive"),
    "notify": Stage("notifiers", "notify"),
    "custom": Stage(CUSTOM_CHANNEL, ""),
}

_RENAMES = {"from": "from_address", "queries": "query_list"}


def snake(name: str) -> str:
    """Spec field name -> task message field name (`endpointUrl` -> `endpoint_url`)."""
    return _RENAMES.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# ------------------------------------------------------------------------------------------
# Plain values -> protobuf


def _plain(value: Any) -> Any:
    """YAML values -> JSON values (dates become ISO text)."""
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _value(value: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    plain = _plain(value)
    if plain is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(plain, bool):
        out.bool_value = plain
    elif isinstance(plain, (int, float)):
        out.number_value = plain
    elif isinstance(plain, str):
        out.string_value = plain
    elif isinstance(plain, list):
        out.list_value.extend(plain)
    else:
        out.struct_value.update(plain)
    return out


def _struct(value: Mapping[str, Any] | None) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(_plain(value or {}))
    return out


def _fill(msg: Message, body: Mapping[str, Any], skip: Iterable[str] = (), path: str = "") -> None:
    """Copy spec fields onto a task message by name (camelCase -> snake_case): scalars, lists,
    maps and nested messages. Fields in `skip` are the caller's to map. A value the message
    cannot hold (an integer beyond its field's range) is a SpecError at `path.<field>`."""
    skipped = set(skip)
    fields = msg.DESCRIPTOR.fields_by_name
    for key, value in body.items():
        if key in skipped or value is None:
            continue
        fd = fields.get(snake(key))
        if fd is None:  # the CRD has a field the task message lacks: a bug, not a user error
            raise TypeError(f"{msg.DESCRIPTOR.full_name} has no field for spec field {key!r}")
        target: Any = getattr(msg, fd.name) if fd.is_repeated or fd.message_type else None
        here = f"{path}.{key}" if path else key
        try:
            if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                target.update({str(k): str(v) for k, v in value.items()})
            elif fd.is_repeated and fd.message_type is not None:
                for i, item in enumerate(value):
                    _fill(target.add(), item, path=f"{here}[{i}]")
            elif fd.is_repeated:
                target.extend(value)
            elif fd.message_type is not None:
                _fill(target, value, path=here)
            else:
                setattr(msg, fd.name, value)
        except (ValueError, TypeError, OverflowError) as e:
            raise SpecError([FieldError(here, f"value {str(value)[:40]} cannot be used: {e}")]
                            ) from None


# ------------------------------------------------------------------------------------------
# What the compiler knows while it walks the steps


def _names(names: Iterable[str]) -> str:
    return ", ".join(names) or "none"


@dataclass
class _Context:
    uid: str
    keys: Keys
    errors: list[FieldError] = field(default_factory=list)
    visible: dict[str, tpb.DatasetRef] = field(default_factory=dict)  # latest producer per name
    readers: dict[str, list[str]] = field(default_factory=dict)  # stream -> reading steps
    files: dict[str, str] = field(default_factory=dict)  # artifact file name -> generator step

    def error(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))

    def read(self, name: str, step: str, path: str,
             known: Mapping[str, tpb.DatasetRef] | None = None) -> tpb.DatasetRef:
        """The stream of the latest producer of `name`; `step` becomes one of its readers."""
        known = self.visible if known is None else known
        ref = known.get(name)
        if ref is None:
            self.error(path, f"unknown dataset '{name}' (known: {_names(known)})")
            return tpb.DatasetRef(name=name)
        steps = self.readers.setdefault(ref.stream, [])
        if step not in steps:
            steps.append(step)
        return tpb.DatasetRef(name=ref.name, stream=ref.stream, producer_step=ref.producer_step)

    def read_all(self, names: list[str] | None, step: str, path: str) -> list[tpb.DatasetRef]:
        """The listed datasets, or every dataset produced so far when the list is absent."""
        if names is None:
            return [self.read(n, step, path) for n in list(self.visible)]
        return [self.read(n, step, f"{path}[{i}]") for i, n in enumerate(names)]

    def produce(self, name: str, step: str, path: str, *, rewrite: bool = False) -> tpb.Output:
        """A new stream of `name` written by `step`; later readers get it."""
        old = self.visible.get(name)
        if old is not None and not rewrite:
            self.error(path, f"dataset '{name}' is already produced by step "
                             f"'{old.producer_step}'")
        ref = tpb.DatasetRef(name=name, stream=self.keys.data(self.uid, name, step),
                             producer_step=step)
        self.visible[name] = ref
        return tpb.Output(dataset=ref)

    def add_file(self, name: str, step: str, path: str) -> None:
        if name in self.files:
            self.error(path, f"file name '{name}' is already generated by step "
                             f"'{self.files[name]}'")
        else:
            self.files[name] = step

    def artifacts(self, names: list[str] | None, path: str) -> list[tpb.ArtifactRef]:
        """The listed artifacts, or every artifact generated so far."""
        if names is None:
            return [tpb.ArtifactRef(name=n) for n in self.files]
        for i, name in enumerate(names):
            if name not in self.files:
                self.error(f"{path}[{i}]", f"unknown artifact '{name}' "
                                           f"(known: {_names(self.files)})")
        return [tpb.ArtifactRef(name=n) for n in names]


@dataclass(frozen=True)
class _Report:
    """Report-wide values some builders need."""

    parameters: Mapping[str, Any]
    tenant: str = ""  # annotation goreports.io/tenant, set by the API from the caller's token


TENANT_ANNOTATION = "goreports.io/tenant"

Builder = Callable[[_Context, _Report, str, Mapping[str, Any], str], Message]


# ------------------------------------------------------------------------------------------
# One builder per stage kind: (ctx, report, step name, spec body, field path) -> task message


def _query(ctx: _Context, step: str, body: Mapping[str, Any], path: str) -> tpb.Query:
    q = tpb.Query()
    _fill(q, body, skip={"parameters"}, path=path)
    for name, value in (body.get("parameters") or {}).items():
        q.parameters.add(name=str(name), value=_value(value))
    if body.get("usePagination") and not body.get("paginationKey"):
        ctx.error(f"{path}.paginationKey", "required when usePagination is true")
    q.output.CopyFrom(ctx.produce(body["name"], step, f"{path}.name"))
    return q


def _collector(msg_type: type[Message]) -> Builder:
    def build(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
              ) -> Message:
        msg = msg_type()
        _fill(msg, body, skip={"queries"}, path=path)
        for j, q in enumerate(body.get("queries") or []):
            msg.query_list.append(_query(ctx, step, q, f"{path}.queries[{j}]"))
        return msg
    return build


def _http(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
          ) -> Message:
    msg = tpb.HttpApiCollector()
    _fill(msg, body, skip={"dataset", "auth"}, path=path)
    auth = body.get("auth") or {}
    msg.auth_type = auth.get("type", "")
    msg.auth_header = auth.get("header", "")
    msg.output.CopyFrom(ctx.produce(body["dataset"], step, f"{path}.dataset"))
    return msg


def _jwt(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
         ) -> Message:
    msg = tpb.JwtValidator(mode="filter", caller_tenant=rep.tenant)
    _fill(msg, body, skip={"datasets"}, path=path)
    inputs = ctx.read_all(body.get("datasets"), step, f"{path}.datasets")
    for ref in inputs:
        if not ref.stream or any(i.name == ref.name for i in msg.inputs):
            continue  # unknown (already reported) or listed twice
        msg.inputs.append(ref)
        msg.outputs.append(ctx.produce(ref.name, step, path, rewrite=True))
    return msg


def _aggregate(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
               ) -> Message:
    msg = tpb.Aggregator()
    before = dict(ctx.visible)  # inputs: datasets produced before this step only
    ops = body.get("operations") or []
    for j, op in enumerate(ops):
        p = f"{path}.operations[{j}]"
        out = msg.operations.add()
        if "union" in op:
            for k, name in enumerate(op["union"].get("inputs") or []):
                out.union.inputs.append(ctx.read(name, step, f"{p}.union.inputs[{k}]", before))
        elif "join" in op:
            join = op["join"]
            out.join.left.CopyFrom(ctx.read(join["left"], step, f"{p}.join.left", before))
            out.join.right.CopyFrom(ctx.read(join["right"], step, f"{p}.join.right", before))
            out.join.keys.extend(join.get("keys") or [])
            out.join.type = join.get("type", "inner")
        elif "groupBy" in op:
            group = op["groupBy"]
            out.group_by.input.CopyFrom(
                ctx.read(group["input"], step, f"{p}.groupBy.input", before))
            _fill(out.group_by, group, skip={"input"}, path=f"{p}.groupBy")
    for j, op in enumerate(ops):
        msg.operations[j].output.CopyFrom(
            ctx.produce(op["output"], step, f"{path}.operations[{j}].output"))
    return msg


def _excel(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
           ) -> Message:
    msg = tpb.ExcelGenerator()
    _fill(msg, body, skip={"sheets"}, path=path)
    ctx.add_file(body["fileName"], step, f"{path}.fileName")
    sheets = body.get("sheets")
    if sheets is None:
        sheets = [{"name": n[:EXCEL_SHEET_NAME_MAX], "dataset": n} for n in ctx.visible]
    seen: dict[str, int] = {}
    for k, sheet in enumerate(sheets):
        p = f"{path}.sheets[{k}]"
        out = msg.sheets.add(name=sheet.get("name") or sheet["dataset"][:EXCEL_SHEET_NAME_MAX])
        out.dataset.CopyFrom(ctx.read(sheet["dataset"], step, f"{p}.dataset"))
        _fill(out, sheet, skip={"name", "dataset"}, path=p)
        key = out.name.lower()  # Excel compares sheet names without case
        if key in seen:
            ctx.error(f"{p}.name", f"duplicate sheet name '{out.name}' (sheet [{seen[key]}])")
        seen.setdefault(key, k)
    return msg


def _mustache(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
              ) -> Message:
    msg = tpb.MustacheGenerator()
    _fill(msg, body, skip={"datasets"}, path=path)
    ctx.add_file(body["fileName"], step, f"{path}.fileName")
    msg.datasets.extend(ctx.read_all(body.get("datasets"), step, f"{path}.datasets"))
    msg.data.CopyFrom(_struct({"parameters": dict(rep.parameters)}))
    return msg


def _csv(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
         ) -> Message:
    msg = tpb.CsvGenerator(delimiter=",", header=True)
    _fill(msg, body, skip={"dataset"}, path=path)
    ctx.add_file(body["fileName"], step, f"{path}.fileName")
    msg.dataset.CopyFrom(ctx.read(body["dataset"], step, f"{path}.dataset"))
    return msg


def _fill_dispatcher(ctx: _Context, msg: Any, body: Mapping[str, Any], path: str) -> Message:
    _fill(msg, body, skip={"artifacts"}, path=path)
    msg.artifacts.extend(ctx.artifacts(body.get("artifacts"), f"{path}.artifacts"))
    return msg


def _dispatcher(msg_type: type[Message]) -> Builder:
    def build(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
              ) -> Message:
        return _fill_dispatcher(ctx, msg_type(), body, path)
    return build


def _notify(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
            ) -> Message:
    msg = tpb.Notifier()
    msg.when.extend(body.get("when") or DEFAULT_NOTIFY_ON)
    if "email" in body:
        _fill_dispatcher(ctx, msg.email, body["email"], f"{path}.email")
    if "webhook" in body:
        _fill_dispatcher(ctx, msg.webhook, body["webhook"], f"{path}.webhook")
    return msg


def _custom(ctx: _Context, rep: _Report, step: str, body: Mapping[str, Any], path: str
            ) -> Message:
    """The spec's free-form task, plus the streams of the datasets the step declares
    (goreports.core.custom_task)."""
    task = body.get("task") or {}
    if custom_task.RESERVED in task:
        ctx.error(f"{path}.task.{custom_task.RESERVED}", "reserved for the compiler; use "
                  "custom.datasets, custom.reads and custom.files")
    inputs = [ctx.read(n, step, f"{path}.reads[{i}]")
              for i, n in enumerate(body.get("reads") or [])]
    outputs = [ctx.produce(n, step, f"{path}.datasets[{i}]")
               for i, n in enumerate(body.get("datasets") or [])]
    for i, name in enumerate(body.get("files") or []):
        ctx.add_file(name, step, f"{path}.files[{i}]")
    msg = _struct({k: v for k, v in task.items() if k != custom_task.RESERVED})
    custom_task.wire(msg, outputs, inputs, body.get("files") or [])
    return msg


BUILDERS: dict[str, Builder] = {
    "sqlite": _collector(tpb.SqliteCollector),
    "mysql": _collector(tpb.MysqlCollector),
    "http": _http,
    "jwt": _jwt,
    "aggregate": _aggregate,
    "excel": _excel,
    "mustache": _mustache,
    "csv": _csv,
    "local": _dispatcher(tpb.LocalDispatcher),
    "s3": _dispatcher(tpb.S3Dispatcher),
    "email": _dispatcher(tpb.EmailDispatcher),
    "webhook": _dispatcher(tpb.WebhookDispatcher),
    "drive": _dispatcher(tpb.DriveDispatcher),
    "notify": _notify,
    "custom": _custom,
}


# ------------------------------------------------------------------------------------------
# The chain


def step_kind(step: Mapping[str, Any]) -> str | None:
    """The stage kind key of a step, or None unless it has exactly one."""
    kinds = [k for k in STAGES if k in step]
    return kinds[0] if len(kinds) == 1 else None


def _check_order(steps: list[Mapping[str, Any]], ctx: _Context) -> None:
    """Families in order, at least one collector, generator and dispatcher, at most one
    notifier, unique step names."""
    names: dict[str, int] = {}
    highest: tuple[int, int] | None = None  # (rank, step index) of the latest family seen
    counts = dict.fromkeys(FAMILIES, 0)
    for i, step in enumerate(steps):
        name = step.get("name", "")
        if name in names:
            ctx.error(f"spec.steps[{i}].name",
                      f"duplicate step name '{name}' (also spec.steps[{names[name]}])")
        names.setdefault(name, i)
        kind = step_kind(step)
        if kind is None:
            ctx.error(f"spec.steps[{i}]", "a step needs exactly one stage kind: "
                                          + ", ".join(STAGES))
            continue
        rank = STAGES[kind].rank
        if kind == "custom":  # a custom stage of a family's channel is one of that family
            channel = (step.get("custom") or {}).get("channel") or CUSTOM_CHANNEL
            rank = FAMILIES.index(channel) if channel in FAMILIES else None
        if rank is None:
            continue
        family = FAMILIES[rank]
        counts[family] += 1
        if highest is not None and rank < highest[0]:
            ctx.error(f"spec.steps[{i}]",
                      f"a {family} step ({kind}) cannot come after the {FAMILIES[highest[0]]} "
                      f"step '{steps[highest[1]].get('name', '')}'; the order is "
                      + ", ".join(FAMILIES))
        elif highest is None or rank > highest[0]:
            highest = (rank, i)
        if family == "notifiers" and counts[family] > 1:
            ctx.error(f"spec.steps[{i}]", "a report has at most one notifier step")
    for family, kinds in (("collectors", "sqlite, mysql, http"),
                          ("generators", "excel, mustache, csv"),
                          ("dispatchers", "local, s3, email, webhook, drive")):
        if counts[family] == 0:
            ctx.error("spec.steps", f"a report needs at least one of the {family} ({kinds})")


def _fill_readers(msg: Message, readers: Mapping[str, list[str]]) -> None:
    """Set `readers` on every Output inside a task message, from the streams' readers."""
    if isinstance(msg, tpb.Output):
        del msg.readers[:]
        msg.readers.extend(readers.get(msg.dataset.stream, []))
        return
    if isinstance(msg, struct_pb2.Struct):
        custom_task.set_readers(msg, readers)
        return
    for fd, value in msg.ListFields():
        if fd.message_type is None or fd.message_type.GetOptions().map_entry:
            continue
        for item in (value if fd.is_repeated else [value]):
            _fill_readers(item, readers)


def _pack(task: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(task)
    return out


def compile_report(doc: Mapping[str, Any], *, uid: str, prefix: str = "goreports",
                   trace_id: str | None = None, now: dt.datetime | None = None) -> job_pb2.Job:
    """Compile a validated ReportRequest into its Job chain; returns the head Job.

    `uid` keys the report's Redis structures; `now` (default: the current UTC time; a naive
    value is taken as UTC) starts the deadline; a report without a namespace gets "default".
    Raises SpecError with every cross-reference error (step order, unknown datasets or
    artifacts, duplicate names) located by field path.
    """
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    steps: list[Mapping[str, Any]] = list(spec.get("steps") or [])
    ctx = _Context(uid=uid, keys=Keys(prefix))
    _check_order(steps, ctx)
    report = _Report(parameters=spec.get("parameters") or {},
                     tenant=str((meta.get("annotations") or {}).get(TENANT_ANNOTATION, "")))

    tasks: list[tuple[Mapping[str, Any], str, Message]] = []
    for i, step in enumerate(steps):
        kind = step_kind(step)
        if kind is None:
            continue
        body = step[kind] or {}
        where = f"spec.steps[{i}].{kind}"
        try:
            tasks.append((step, kind, BUILDERS[kind](ctx, report, step["name"], body, where)))
        except SpecError as e:  # a value a task message cannot hold (see _fill)
            ctx.errors += e.errors
        except (ValueError, OverflowError) as e:  # free-form values (parameters, custom task)
            ctx.error(where, f"a value cannot be used: {e}")
    if ctx.errors:
        raise SpecError(ctx.errors)

    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    deadline = now + dt.timedelta(seconds=spec.get("deadlineSeconds", DEFAULT_DEADLINE_SECONDS))
    ref = job_pb2.ReportRef(namespace=meta.get("namespace") or "default",
                            name=meta.get("name", ""), uid=uid)
    trace = trace_id or uuid.uuid4().hex
    jobs: list[job_pb2.Job] = []
    for index, (step, kind, task) in enumerate(tasks):
        _fill_readers(task, ctx.readers)
        stage = STAGES[kind]
        channel, pattern = stage.channel, stage.pattern
        if kind == "custom":
            channel = step["custom"].get("channel") or CUSTOM_CHANNEL
            pattern = step["custom"].get("pattern", "")
        job = job_pb2.Job(
            name=step["name"], channel=channel, pattern=step.get("pattern") or pattern,
            task=_pack(task), report=ref, attempt=1,
            max_attempts=spec.get("maxAttempts", DEFAULT_MAX_ATTEMPTS), trace_id=trace,
            step_index=index, step_count=len(tasks))
        job.deadline.FromDatetime(deadline)
        jobs.append(job)
    for index in range(len(jobs) - 2, -1, -1):
        jobs[index].next.CopyFrom(jobs[index + 1])
    return jobs[0]


def iter_chain(job: job_pb2.Job) -> list[job_pb2.Job]:
    """The Jobs of a chain, head first."""
    out = [job]
    while out[-1].HasField("next"):
        out.append(out[-1].next)
    return out


def describe_chain(job: job_pb2.Job) -> str:
    """`collect > excel > deliver`."""
    return " > ".join(j.name for j in iter_chain(job))
