"""Pure logic of the `aggregate` stage: union column matching, hash join, group-by accumulators.

Why a separate module: the semantics (which columns come out with which types, what NULL does,
how a Decimal is summed or averaged) are the part a user relies on and a test pins down; none of
it needs a bus. The stage module (`aggregate.py`) only moves batches between streams and these
objects. Every class works batch by batch.

Semantics follow SQL (MariaDB) wherever SQL has an answer:

- union: the inputs must have the same column names (any order); rows come out in the first
  input's column order. Column types must agree, except that numbers widen (INTEGER+DECIMAL ->
  DECIMAL, INTEGER/DECIMAL+FLOAT -> FLOAT; cells are converted); a column of unknown type takes
  the other's type.
- join: `inner` or `left`, on equal key columns. A NULL key matches nothing. Keys compare as
  Python values: 7, 7.0 and Decimal("7.00") are equal; the text "7" is not the number 7.
  Output: every left column, then the right columns that are not keys; a right column whose
  name is taken is renamed `right_<name>`. The right side is held in memory (hash table), at
  most `max_right_rows` rows (default MAX_JOIN_RIGHT_ROWS); the left side streams.
- group_by: one output row per distinct key tuple (NULL keys form one group, like SQL), in the
  order the groups first appear; no keys -> exactly one row, even for no input rows. One
  accumulator per group is held in memory, at most `max_groups` groups (MAX_GROUPS).
  count: rows (no column) or non-NULL cells (column), INTEGER.
  sum: NULLs ignored, all NULL -> NULL; INTEGER -> INTEGER, FLOAT -> FLOAT, DECIMAL -> DECIMAL
  summed exactly (65 significant digits, MariaDB's DECIMAL maximum).
  avg: NULLs ignored, all NULL -> NULL; FLOAT -> FLOAT; INTEGER and DECIMAL -> DECIMAL with 4
  more decimal places than the inputs' largest scale, rounded half up: MariaDB's rule
  (div_precision_increment = 4), so AVG(int) gives 2.5000 here as there.
  min/max: NULLs ignored, all NULL -> NULL, the input column's type.
"""
from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterator, Sequence

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import dataset_pb2

Row = Sequence[Any]
Column = dataset_pb2.Column

MAX_JOIN_RIGHT_ROWS = 1_000_000
MAX_GROUPS = 1_000_000
JOIN_TYPES = ("inner", "left")
FUNCTIONS = ("count", "sum", "avg", "min", "max")
NUMERIC = frozenset({values.INTEGER, values.FLOAT, values.DECIMAL})
UNKNOWN = dataset_pb2.COLUMN_TYPE_UNSPECIFIED
AVG_EXTRA_SCALE = 4
_EXACT = decimal.Context(prec=65, rounding=decimal.ROUND_HALF_UP)


def _names(columns: Sequence[Column]) -> list[str]:
    return [c.name for c in columns]


def _type_name(t: int) -> str:
    return values.TYPE_NAMES.get(t, "unknown")


# -- types ----------------------------------------------------------------------------------------

def widen(a: int, b: int) -> int | None:
    """The column type that holds both `a` and `b`, or None when they do not mix."""
    if a == b or b == UNKNOWN:
        return a
    if a == UNKNOWN:
        return b
    if {a, b} <= NUMERIC:
        return values.FLOAT if values.FLOAT in (a, b) else values.DECIMAL
    return None




def _to_float(v: Any) -> Any:
    if isinstance(v, (int, Decimal)) and not isinstance(v, bool):
        return float(v)
    return v


def caster(source: int, target: int) -> Callable[[Any], Any] | None:
    """A cell converter from a column of type `source` to `target`; None when none is needed."""
    if source == target or source == UNKNOWN:
        return None
    if target == values.DECIMAL:
        return values.to_decimal
    if target == values.FLOAT:
        return _to_float
    return None


# -- union ----------------------------------------------------------------------------------------

@dataclass
class UnionPlan:
    """Output columns of a union and, per input, how its rows become output rows."""

    columns: list[Column]
    orders: list[list[int]]  # per input: index of each output column in the input's row
    casts: list[list[Callable[[Any], Any] | None]]

    def project(self, i: int, rows: Sequence[Row]) -> list[list[Any]]:
        order, casts = self.orders[i], self.casts[i]
        identity = order == list(range(len(order))) and not any(casts)
        if identity:
            return [list(r) for r in rows]
        out = []
        for r in rows:
            row = [r[j] for j in order]
            for k, cast in enumerate(casts):
                if cast is not None and row[k] is not None:
                    row[k] = cast(row[k])
            out.append(row)
        return out


def plan_union(inputs: Sequence[tuple[str, Sequence[Column]]], where: str) -> UnionPlan:
    """Match the inputs' columns by name; `inputs` is [(dataset name, columns)]."""
    if not inputs:
        raise PermanentError(f"{where}: union has no inputs", reason="InvalidTask")
    first_name, first = inputs[0]
    names = _names(first)
    types = [c.type for c in first]
    for name, cols in inputs[1:]:
        other = _names(cols)
        if sorted(other) != sorted(names):
            missing = [n for n in names if n not in other]
            extra = [n for n in other if n not in names]
            raise PermanentError(
                f"{where}: union inputs need the same columns: {name!r} lacks {missing} and has "
                f"{extra} beyond {first_name!r}; select the same columns in both",
                reason="ColumnMismatch")
        by_name = {c.name: c.type for c in cols}
        for k, n in enumerate(names):
            wide = widen(types[k], by_name[n])
            if wide is None:
                raise PermanentError(
                    f"{where}: union column {n!r} is {_type_name(types[k])} in an earlier input "
                    f"but {_type_name(by_name[n])} in {name!r}; cast it to one type in the "
                    f"query", reason="ColumnMismatch")
            types[k] = wide
    columns = [Column(name=n, type=t) for n, t in zip(names, types)]
    orders, casts = [], []
    for _, cols in inputs:
        idx = {c.name: j for j, c in enumerate(cols)}
        orders.append([idx[n] for n in names])
        casts.append([caster(cols[idx[n]].type, t) for n, t in zip(names, types)])
    return UnionPlan(columns, orders, casts)


# -- join -----------------------------------------------------------------------------------------

def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"right_{name}"
    return name


class HashJoin:
    """Hash join: `add_right` loads the right side, then `probe` streams left batches."""

    def __init__(self, left: Sequence[Column], right: Sequence[Column], keys: Sequence[str],
                 join_type: str, where: str, *, left_name: str = "left",
                 right_name: str = "right", max_right_rows: int = MAX_JOIN_RIGHT_ROWS) -> None:
        self.where = where
        self.right_name = right_name
        self.max_right_rows = max_right_rows
        self.join_type = join_type or "inner"
        if self.join_type not in JOIN_TYPES:
            raise PermanentError(f"{where}: join type {join_type!r} is not one of "
                                 f"{', '.join(JOIN_TYPES)}", reason="InvalidTask")
        if not keys:
            raise PermanentError(f"{where}: join needs at least one key column",
                                 reason="InvalidTask")
        lnames, rnames = _names(left), _names(right)
        for side, names, ds in (("left", lnames, left_name), ("right", rnames, right_name)):
            missing = [k for k in keys if k not in names]
            if missing:
                raise PermanentError(
                    f"{where}: join key(s) {missing} are not columns of the {side} dataset "
                    f"{ds!r} (columns: {', '.join(names) or 'none'})", reason="UnknownColumn")
        self.left_keys = [lnames.index(k) for k in keys]
        self.right_keys = [rnames.index(k) for k in keys]
        self.right_values = [j for j, n in enumerate(rnames) if n not in keys]
        taken = set(lnames)
        extra: list[Column] = []
        for j in self.right_values:
            name = _unique(rnames[j], taken)
            taken.add(name)
            extra.append(Column(name=name, type=right[j].type))
        self.columns: list[Column] = [Column(name=c.name, type=c.type) for c in left] + extra
        self._nulls = [None] * len(self.right_values)
        self._table: dict[tuple[Any, ...], list[list[Any]]] = {}
        self.right_rows = 0

    def add_right(self, rows: Sequence[Row]) -> None:
        if self.right_rows + len(rows) > self.max_right_rows:
            raise PermanentError(
                f"{self.where}: the right side of the join ({self.right_name!r}) has more than "
                f"{self.max_right_rows:,} rows, the most a join holds in memory; put the smaller "
                f"dataset on the right, or filter or aggregate it first", reason="JoinTooLarge")
        self.right_rows += len(rows)
        keys, vals, table = self.right_keys, self.right_values, self._table
        for r in rows:
            key = tuple(r[j] for j in keys)
            if any(k is None for k in key):
                continue  # a NULL key never matches: no need to keep the row
            table.setdefault(key, []).append([r[j] for j in vals])

    def probe(self, rows: Sequence[Row], chunk_rows: int = 1000) -> Iterator[list[list[Any]]]:
        """Joined rows for a left batch, in chunks of at most about `chunk_rows` rows (one left
        row with many matches cannot blow the memory up)."""
        keys, table, left_join = self.left_keys, self._table, self.join_type == "left"
        out: list[list[Any]] = []
        for r in rows:
            key = tuple(r[j] for j in keys)
            matches = None if any(k is None for k in key) else table.get(key)
            if matches:
                base = list(r)
                for m in matches:
                    out.append(base + m)
                    if len(out) >= chunk_rows:
                        yield out
                        out = []
            elif left_join:
                out.append(list(r) + self._nulls)
            if len(out) >= chunk_rows:
                yield out
                out = []
        if out:
            yield out


# -- group by -------------------------------------------------------------------------------------

class _Acc:
    """One aggregate of one group."""

    __slots__ = ()

    def add(self, v: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def result(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


class _CountRows(_Acc):
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, v: Any) -> None:
        self.n += 1

    def result(self) -> Any:
        return self.n


class _Count(_CountRows):
    __slots__ = ()

    def add(self, v: Any) -> None:
        if v is not None:
            self.n += 1


class _Sum(_Acc):
    __slots__ = ("total", "exact")

    def __init__(self, exact: bool) -> None:
        self.total: Any = None
        self.exact = exact

    def add(self, v: Any) -> None:
        if v is None:
            return
        if self.total is None:
            self.total = v
        elif self.exact:
            self.total = _EXACT.add(self.total, v)
        else:
            self.total += v

    def result(self) -> Any:
        return self.total


class _Avg(_Acc):
    __slots__ = ("total", "n", "scale", "exact")

    def __init__(self, exact: bool) -> None:
        self.total: Any = 0
        self.n = 0
        self.scale = 0
        self.exact = exact

    def add(self, v: Any) -> None:
        if v is None:
            return
        self.n += 1
        if self.exact:
            exp = v.as_tuple().exponent
            if isinstance(exp, int) and -exp > self.scale:
                self.scale = -exp
            self.total = _EXACT.add(self.total, v)
        else:
            self.total += v

    def result(self) -> Any:
        if self.n == 0:
            return None
        if not self.exact:
            return self.total / self.n
        quantum = Decimal(1).scaleb(-(self.scale + AVG_EXTRA_SCALE))
        return _EXACT.divide(self.total, Decimal(self.n)).quantize(quantum, context=_EXACT)


class _Min(_Acc):
    __slots__ = ("best",)

    def __init__(self) -> None:
        self.best: Any = None

    def add(self, v: Any) -> None:
        if v is not None and (self.best is None or v < self.best):
            self.best = v

    def result(self) -> Any:
        return self.best


class _Max(_Min):
    __slots__ = ()

    def add(self, v: Any) -> None:
        if v is not None and (self.best is None or v > self.best):
            self.best = v


@dataclass
class _Agg:
    """One aggregate column: where its input is, how a cell is prepared, what accumulates it."""

    function: str
    column: str
    name: str
    index: int | None  # None: count(*)
    make: Callable[[], _Acc]
    prepare: Callable[[Any], Any] | None = None
    type: int = values.INTEGER


def _numeric_cell(kind: int) -> Callable[[Any], Any]:
    """Checks (and converts, for DECIMAL) a cell of a column summed or averaged."""
    def prepare(v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
            raise TypeError(type(v).__name__)
        if kind == values.DECIMAL and not isinstance(v, Decimal):
            return values.to_decimal(v)
        if kind == values.FLOAT and not isinstance(v, float):
            return float(v)
        return v
    return prepare


@dataclass
class GroupBy:
    """Accumulates batches; `results()` gives the output rows."""

    columns: list[Column]
    where: str
    dataset: str
    key_index: list[int]
    aggs: list[_Agg]
    max_groups: int = MAX_GROUPS
    groups: dict[tuple[Any, ...], list[_Acc]] = field(default_factory=dict)
    rows: int = 0

    def add(self, rows: Sequence[Row]) -> None:
        keys, aggs, groups = self.key_index, self.aggs, self.groups
        for n, r in enumerate(rows):
            key = tuple(r[j] for j in keys)
            accs = groups.get(key)
            if accs is None:
                if len(groups) >= self.max_groups:
                    raise PermanentError(
                        f"{self.where}: grouping {self.dataset!r} gives more than "
                        f"{self.max_groups:,} groups, the most held in memory; group by fewer "
                        f"or coarser keys", reason="TooManyGroups")
                accs = groups[key] = [a.make() for a in aggs]
            for agg, acc in zip(aggs, accs):
                v = None if agg.index is None else r[agg.index]
                if agg.prepare is not None:
                    try:
                        v = agg.prepare(v)
                    except TypeError as e:
                        raise PermanentError(
                            f"{self.where}: {agg.function}({agg.column}) needs numbers, but row "
                            f"{self.rows + n + 1} of {self.dataset!r} holds a {e} there",
                            reason="InvalidAggregate") from None
                try:
                    acc.add(v)
                except TypeError:
                    raise PermanentError(
                        f"{self.where}: {agg.function}({agg.column}) cannot compare the values "
                        f"of column {agg.column!r} in {self.dataset!r} (mixed kinds of values)",
                        reason="InvalidAggregate") from None
        self.rows += len(rows)

    def results(self) -> list[list[Any]]:
        if not self.groups and not self.key_index:
            self.groups[()] = [a.make() for a in self.aggs]  # SQL: totals of nothing, one row
        return [list(key) + [acc.result() for acc in accs] for key, accs in self.groups.items()]


def plan_group_by(columns: Sequence[Column], keys: Sequence[str], aggregates: Sequence[Any],
                  where: str, dataset: str, *, max_groups: int = MAX_GROUPS) -> GroupBy:
    """`aggregates` are AggregateFunction messages (column, function, `as`)."""
    names = _names(columns)
    types = {c.name: c.type for c in columns}

    def index_of(col: str, what: str) -> int:
        if col not in names:
            raise PermanentError(f"{where}: {what} {col!r} is not a column of {dataset!r} "
                                 f"(columns: {', '.join(names) or 'none'})",
                                 reason="UnknownColumn")
        return names.index(col)

    if not aggregates:
        raise PermanentError(f"{where}: groupBy needs at least one aggregate",
                             reason="InvalidTask")
    key_index = [index_of(k, "group key") for k in keys]
    out = [Column(name=k, type=types[k]) for k in keys]
    aggs: list[_Agg] = []
    for a in aggregates:
        fn = a.function.lower()
        name = getattr(a, "as") or (f"{fn}_{a.column}" if a.column else fn)
        if fn not in FUNCTIONS:
            raise PermanentError(f"{where}: aggregate {name!r}: function {a.function!r} is not "
                                 f"one of {', '.join(FUNCTIONS)}", reason="InvalidTask")
        if fn == "count":
            if a.column:
                aggs.append(_Agg(fn, a.column, name, index_of(a.column, "count column"),
                                 _Count, None, values.INTEGER))
            else:
                aggs.append(_Agg(fn, "*", name, None, _CountRows, None, values.INTEGER))
            continue
        if not a.column:
            raise PermanentError(f"{where}: aggregate {name!r}: {fn} needs a column",
                                 reason="InvalidTask")
        idx = index_of(a.column, f"{fn} column")
        kind = types[a.column]
        if fn in ("sum", "avg"):
            if kind not in NUMERIC and kind != UNKNOWN:
                raise PermanentError(
                    f"{where}: aggregate {name!r}: {fn}({a.column}) needs a number column, "
                    f"{a.column!r} is {_type_name(kind)}", reason="InvalidAggregate")
            if fn == "sum":  # integers stay integers; unknown columns are summed as decimals
                acc_kind = values.DECIMAL if kind in (values.DECIMAL, UNKNOWN) else kind
            else:  # averages of integers and decimals are decimals (MariaDB's rule)
                acc_kind = values.FLOAT if kind == values.FLOAT else values.DECIMAL
            exact = acc_kind == values.DECIMAL
            make: Callable[[], _Acc] = ((lambda e=exact: _Sum(e)) if fn == "sum"
                                        else (lambda e=exact: _Avg(e)))
            aggs.append(_Agg(fn, a.column, name, idx, make, _numeric_cell(acc_kind), acc_kind))
        else:
            aggs.append(_Agg(fn, a.column, name, idx, _Min if fn == "min" else _Max, None, kind))
    for agg in aggs:
        out.append(Column(name=agg.name, type=agg.type))
    seen: set[str] = set()
    for c in out:
        if c.name in seen:
            raise PermanentError(f"{where}: output column {c.name!r} appears twice (a key and an "
                                 f"aggregate `as`, or two `as`); rename one",
                                 reason="DuplicateColumn")
        seen.add(c.name)
    return GroupBy(out, where, dataset, key_index, aggs, max_groups)
