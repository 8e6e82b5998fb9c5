"""Which parts of a Mustache template can be rendered a batch of rows at a time.

The mustache generator streams when a template's rows are used only by top-level sections
(`{{#sales}}…{{/sales}}`, `{{#datasets.sales.rows}}…{{/datasets.sales.rows}}`): each such
"row section" is rendered per batch of rows, everything between them ("static segments") once
after all rows are read. That is byte-identical to chevron rendering the whole model only if no
static segment and no row-section body can observe the rows, so this module checks chevron's own
tokens (of the template and of every partial reached) and answers with a `Plan` or, when it
cannot prove that, a `Fallback` with the reason. Pure: no I/O, no rendering.

What a static segment may not use (anything that could reach rows): `<name>`, `datasets`,
`datasets.<name>`, `datasets.<name>.rows…`, and `.` where it would be the whole model. One
exception: an inverted section on a rows key (`{{^sales}}no sales{{/sales}}`) only asks whether
rows were rendered, and the generator answers that with a stand-in. A row-section body may not
use rows keys either, nor `datasets…` at all (`row_count`, `truncated` are final only after
reading). Also refused: `{{^k}}` inside `{{#k}}`, which chevron's list sections mis-nest (they
end at the first `{{/k}}`), so the split by tokens would not match chevron's render.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Literal, Mapping, Union

from chevron.tokenizer import tokenize

RESERVED = frozenset({"report", "parameters", "datasets"})
_KEYED = frozenset({"variable", "no escape", "section", "inverted section"})
_OPENS = frozenset({"section", "inverted section"})

Token = tuple[str, str]
Mode = Literal["static", "rows"]
# What `{{.}}` could print at a point of a static segment: the whole model at the top level,
# and one section deeper too (chevron prints the scope under a `True`, which an inverted section
# pushes, as does a section on a true value or a list of them); deeper is safe.
Dot = Literal["model", "under-model", "safe"]


@dataclass(frozen=True)
class RowSection:
    """A top-level section over one dataset's rows: its opening tag, body and end tag."""
    dataset: str
    key: str
    tokens: tuple[Token, ...]

    def scope(self, rows: list[Any]) -> dict[str, Any]:
        """A scope in which this section's key names `rows` (`datasets.x.rows` nested)."""
        value: Any = rows
        for part in reversed(self.key.split(".")):
            value = {part: value}
        return value  # type: ignore[no-any-return]


Part = Union[RowSection, tuple[Token, ...]]


@dataclass(frozen=True)
class Plan:
    """The template in order: static segments (token tuples) and row sections."""
    parts: tuple[Part, ...]

    @property
    def row_sections(self) -> list[RowSection]:
        return [p for p in self.parts if isinstance(p, RowSection)]


@dataclass(frozen=True)
class Fallback:
    """The template must be rendered from a model held in memory, because of `reason`."""
    reason: str


@dataclass
class LineEnd:
    """The end of some rendered text as chevron's partial indentation sees it: a partial tag
    is indented by the text after the last line break when that text is blank. Kept small:
    that text exactly while it is blank, a single "x" once it is not."""
    newline: bool = False
    tail: str = ""

    def add(self, text: str) -> None:
        _, nl, after = text.rpartition("\n")
        if nl:
            self.newline, self.tail = True, _squash(after)
        else:
            self.tail = _squash(self.tail + after)

    def extend(self, other: "LineEnd") -> None:
        if other.newline:
            self.newline, self.tail = True, other.tail
        else:
            self.tail = _squash(self.tail + other.tail)


def _squash(tail: str) -> str:
    return tail if not tail or tail.isspace() else "x"


def rows_dataset(key: str, datasets: Collection[str]) -> str | None:
    """The dataset whose rows `key` names exactly (`<name>` or `datasets.<name>.rows`)."""
    parts = key.split(".")
    if len(parts) == 1 and parts[0] in datasets and parts[0] not in RESERVED:
        return parts[0]
    if len(parts) == 3 and parts[0] == "datasets" and parts[2] == "rows" and parts[1] in datasets:
        return parts[1]
    return None


def _section_end(tokens: list[Token], start: int) -> int:
    """Index of the end tag closing the section opened at `start` (the tokenizer has checked
    that sections nest)."""
    depth = 0
    for i in range(start, len(tokens)):
        kind = tokens[i][0]
        if kind in _OPENS:
            depth += 1
        elif kind == "end":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"section {tokens[start][1]!r} is never closed")  # tokenizer prevents it


@dataclass
class _Checker:
    """Finds the first use of rows in a token list, following partials (each partial once per
    mode and context, so recursive partials terminate)."""
    partials: Mapping[str, str]
    datasets: Collection[str]
    _tokens: dict[str, list[Token]] = field(default_factory=dict)
    _seen: set[tuple[str, Mode, Dot]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.row_names = {n for n in self.datasets if "." not in n and n not in RESERVED}

    def problem(self, tokens: list[Token] | tuple[Token, ...], mode: Mode, dot: Dot,
                where: str) -> str | None:
        stack: list[tuple[str, str, Dot]] = []  # open sections: kind, key, dot outside
        for kind, key in tokens:
            if kind == "end":
                dot = stack.pop()[2]
                continue
            if kind in _KEYED:
                found = self._key_problem(kind, key, mode, dot)
                if found:
                    return f"{where} uses {{{{{_sigil(kind)}{key}}}}} {found}"
            if kind in _OPENS:
                if kind == "inverted section" and any(k == "section" and open_key == key
                                                      for k, open_key, _ in stack):
                    # chevron ends a list section at the first end tag with its key
                    return f"{where} nests {{{{^{key}}}}} inside {{{{#{key}}}}}"
                stack.append((kind, key, dot))
                dot = ("under-model" if dot == "model" and not _never_true(kind, key)
                       else "safe")
            elif kind == "partial":
                found = self._partial_problem(key, mode, dot)
                if found:
                    return found
        return None

    def _key_problem(self, kind: str, key: str, mode: Mode, dot: Dot) -> str | None:
        if key == ".":
            return "where it is the whole model" if dot != "safe" and mode == "static" else None
        parts = key.split(".")
        if mode == "rows":
            if parts[0] == "datasets":
                return "inside a row section (row counts are known only after reading)"
            if parts[0] in self.row_names:
                return "inside a row section"
            return None
        if kind == "inverted section" and rows_dataset(key, self.datasets):
            return None  # asks only whether rows were rendered
        if parts[0] in self.row_names or (parts[0] == "datasets" and
                                          (len(parts) < 3 or parts[2] == "rows")):
            return "outside a top-level section over rows"
        return None

    def _partial_problem(self, name: str, mode: Mode, dot: Dot) -> str | None:
        if (name, mode, dot) in self._seen:
            return None
        self._seen.add((name, mode, dot))
        if name not in self._tokens:
            self._tokens[name] = list(tokenize(self.partials.get(name, "")))
        return self.problem(self._tokens[name], mode, dot, f"partial {name!r}")


def _never_true(kind: str, key: str) -> bool:
    """Whether a top-level section's scope can never be `True` (so `{{.}}` in it is that
    scope): the report (text), the parameters (a map), a dataset's columns (names) or row
    count."""
    parts = key.split(".")
    return kind == "section" and (parts[0] == "report" or key == "parameters" or (
        len(parts) >= 3 and parts[0] == "datasets" and parts[2] in ("columns", "row_count")))


def _sigil(kind: str) -> str:
    return {"section": "#", "inverted section": "^", "no escape": "&"}.get(kind, "")


def plan_template(template: str, partials: Mapping[str, str],
                  datasets: Collection[str]) -> Plan | Fallback:
    """Split `template` into static segments and row sections, or say why it cannot stream.
    `partials` are the partials' texts by name; `datasets` the names in the model."""
    tokens = list(tokenize(template))
    checker = _Checker(partials, datasets)
    parts: list[Part] = []
    static: list[Token] = []
    i = 0
    while i < len(tokens):
        kind, key = tokens[i]
        end = _section_end(tokens, i) if kind in _OPENS else i
        name = rows_dataset(key, datasets) if kind == "section" else None
        if name is None:
            static += tokens[i:end + 1]
        else:
            found = checker.problem(tokens[i + 1:end], "rows", "safe", "the template")
            if found:
                return Fallback(found)
            if static:
                parts.append(tuple(static))
                static = []
            parts.append(RowSection(name, key, tuple(tokens[i:end + 1])))
        i = end + 1
    if static:
        parts.append(tuple(static))
    for part in parts:
        if not isinstance(part, RowSection):
            found = checker.problem(part, "static", "model", "the template")
            if found:
                return Fallback(found)
    return Plan(tuple(parts))
