"""The task of a `custom` step: the spec's free-form `task`, plus the streams the compiler wires in.

Why: a custom stage's task travels as a google.protobuf.Struct (no message of its own), yet the
stage must write and read datasets exactly like a built-in one: the compiler resolves the stream
of every dataset it declares (`datasets`, `reads`) and the readers of each output (so the
producer throttles and trims). Those go under one reserved key of the Struct, and `unpack` gives
them back as the same `Output` / `DatasetRef` messages built-in stages get:

    task = {...the spec's task...,
            "goreports": {"outputs": [Output as JSON], "inputs": [DatasetRef as JSON],
                          "files": [file name, ...]}}
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2

from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2

RESERVED = "goreports"


def wire(settings: struct_pb2.Struct, outputs: Iterable[tasks_pb2.Output],
         inputs: Iterable[tasks_pb2.DatasetRef], files: Iterable[str]) -> None:
    """Add the compiler's part to a custom task (only when the step declares any)."""
    part: dict[str, Any] = {
        "outputs": [json_format.MessageToDict(o) for o in outputs],
        "inputs": [json_format.MessageToDict(i) for i in inputs],
        "files": list(files),
    }
    if any(part.values()):
        settings.update({RESERVED: part})


def set_readers(settings: struct_pb2.Struct, readers: Mapping[str, list[str]]) -> None:
    """Fill `readers` of every wired output, once every step of the report is known."""
    if RESERVED not in settings.fields:
        return
    part = settings[RESERVED]
    if "outputs" not in part.fields:
        return
    outputs = part["outputs"]
    for i in range(len(outputs)):
        out = outputs[i]  # a reference into the Struct, so assignment updates it in place
        out["readers"] = list(readers.get(out["dataset"]["stream"], []))


@dataclass(frozen=True)
class CustomTask:
    """A custom stage's view of its task."""

    step: str
    settings: dict[str, Any]  # the spec's `task`, as plain JSON values
    outputs: dict[str, tasks_pb2.Output] = field(default_factory=dict)  # by dataset name
    inputs: dict[str, tasks_pb2.DatasetRef] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def output(self, name: str) -> tasks_pb2.Output:
        """The stream to write dataset `name` to; the spec must list it under `datasets`."""
        try:
            return self.outputs[name]
        except KeyError:
            raise PermanentError(
                f"step {self.step!r} writes dataset {name!r} but its spec does not declare it: add "
                f"it to custom.datasets (declared: {', '.join(self.outputs) or 'none'})",
                reason="InvalidTask") from None

    def input(self, name: str) -> tasks_pb2.DatasetRef:
        """The stream of dataset `name`; the spec must list it under `reads`."""
        try:
            return self.inputs[name]
        except KeyError:
            raise PermanentError(
                f"step {self.step!r} reads dataset {name!r} but its spec does not list it: add it "
                f"to custom.reads (listed: {', '.join(self.inputs) or 'none'})",
                reason="InvalidTask") from None


def unpack(task: struct_pb2.Struct, step: str = "") -> CustomTask:
    """Split a custom stage's Struct into the spec's settings and the wired streams."""
    settings = json_format.MessageToDict(task)
    part = settings.pop(RESERVED, None) or {}
    outputs = [json_format.ParseDict(o, tasks_pb2.Output()) for o in part.get("outputs", [])]
    inputs = [json_format.ParseDict(i, tasks_pb2.DatasetRef()) for i in part.get("inputs", [])]
    return CustomTask(step=step, settings=settings,
                      outputs={o.dataset.name: o for o in outputs},
                      inputs={i.name: i for i in inputs},
                      files=tuple(part.get("files", [])))
