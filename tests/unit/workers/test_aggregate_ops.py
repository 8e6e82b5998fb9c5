"""The aggregator's pure operations: union column matching, hash join, group-by semantics."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from goreports.core import values
from goreports.core.errors import PermanentError
from goreports.proto import tasks_pb2
from goreports.workers.aggregators import _ops

from unit.workers.stagekit import columns

W = "aggregate step 'agg', operation [0]"


def agg(function: str, column: str = "", name: str = "") -> tasks_pb2.AggregateFunction:
    a = tasks_pb2.AggregateFunction(column=column, function=function)
    setattr(a, "as", name)
    return a


def joined(join: _ops.HashJoin, left: list[list[Any]], chunk: int = 1000) -> list[list[Any]]:
    return [row for c in join.probe(left, chunk) for row in c]


# -- union ----------------------------------------------------------------------------------------

def test_union_matches_columns_by_name_and_widens_numbers() -> None:
    a = columns(("id", values.INTEGER), ("amount", values.INTEGER), ("note", values.STRING))
    b = columns(("note", values.STRING), ("id", values.INTEGER), ("amount", values.DECIMAL))
    plan = _ops.plan_union([("a", a), ("b", b)], W)
    assert [(c.name, c.type) for c in plan.columns] == [
        ("id", values.INTEGER), ("amount", values.DECIMAL), ("note", values.STRING)]
    assert plan.project(0, [[1, 5, "x"], [2, None, None]]) == [[1, Decimal(5), "x"],
                                                             [2, None, None]]
    assert plan.project(1, [["y", 3, Decimal("1.25")]]) == [[3, Decimal("1.25"), "y"]]
    assert isinstance(plan.project(0, [[1, 5, "x"]])[0][1], Decimal)


def test_union_float_wins_and_unknown_takes_the_other() -> None:
    a = columns(("v", values.DECIMAL), ("w", _ops.UNKNOWN))
    b = columns(("v", values.FLOAT), ("w", values.DATE))
    plan = _ops.plan_union([("a", a), ("b", b)], W)
    assert [c.type for c in plan.columns] == [values.FLOAT, values.DATE]
    assert plan.project(0, [[Decimal("0.1"), None]]) == [[0.1, None]]


def test_union_refuses_other_columns_or_types() -> None:
    a = columns(("id", values.INTEGER), ("name", values.STRING))
    with pytest.raises(PermanentError) as e:
        _ops.plan_union([("a", a), ("b", columns(("id", values.INTEGER)))], W)
    assert e.value.reason == "ColumnMismatch" and "'name'" in str(e.value)
    with pytest.raises(PermanentError, match="'name' is string .* but date in 'b'"):
        _ops.plan_union([("a", a), ("b", columns(("id", values.INTEGER),
                                                 ("name", values.DATE)))], W)


# -- join -----------------------------------------------------------------------------------------

ORDERS = columns(("id", values.INTEGER), ("customer_id", values.INTEGER),
                 ("name", values.STRING), ("amount", values.DECIMAL))
CUSTOMERS = columns(("customer_id", values.INTEGER), ("name", values.STRING),
                    ("region", values.STRING))


def test_inner_join_with_duplicates_nulls_and_renamed_collisions() -> None:
    join = _ops.HashJoin(ORDERS, CUSTOMERS, ["customer_id"], "inner", W)
    assert [(c.name, c.type) for c in join.columns] == [
        ("id", values.INTEGER), ("customer_id", values.INTEGER), ("name", values.STRING),
        ("amount", values.DECIMAL), ("right_name", values.STRING), ("region", values.STRING)]
    join.add_right([[1, "Ann", "EU"], [2, "Bob", "US"], [2, "Bob2", "APAC"], [None, "Nil", "X"]])
    left = [[10, 1, "o10", Decimal("1.5")], [11, 2, "o11", Decimal("2")],
            [12, 3, "o12", Decimal("3")], [13, None, "o13", Decimal("4")]]
    assert joined(join, left) == [
        [10, 1, "o10", Decimal("1.5"), "Ann", "EU"],
        [11, 2, "o11", Decimal("2"), "Bob", "US"],
        [11, 2, "o11", Decimal("2"), "Bob2", "APAC"]]
    assert join.right_rows == 4


def test_left_join_keeps_unmatched_rows_with_nulls() -> None:
    join = _ops.HashJoin(ORDERS, CUSTOMERS, ["customer_id"], "left", W)
    join.add_right([[1, "Ann", "EU"]])
    assert joined(join, [[10, 1, "a", None], [12, 3, "c", None], [13, None, "d", None]]) == [
        [10, 1, "a", None, "Ann", "EU"], [12, 3, "c", None, None, None],
        [13, None, "d", None, None, None]]


def test_join_keys_compare_numerically_but_not_text_to_numbers() -> None:
    join = _ops.HashJoin(ORDERS, CUSTOMERS, ["customer_id"], "inner", W)
    join.add_right([[Decimal("1.00"), "Ann", "EU"], ["2", "Bob", "US"]])
    assert [r[0] for r in joined(join, [[10, 1, "", None], [11, 2, "", None]])] == [10]


def test_join_on_two_keys_and_chunked_output() -> None:
    left = columns(("a", values.INTEGER), ("b", values.STRING), ("x", values.INTEGER))
    right = columns(("b", values.STRING), ("a", values.INTEGER), ("y", values.INTEGER))
    join = _ops.HashJoin(left, right, ["a", "b"], "", W)
    join.add_right([[f"k{i % 2}", 1, i] for i in range(10)])  # 5 matches per key
    chunks = list(join.probe([[1, "k0", 100], [1, "k1", 101], [2, "k0", 102]], chunk_rows=3))
    assert [len(c) for c in chunks] == [3, 3, 3, 1]
    assert [r[3] for c in chunks for r in c] == [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]


def test_join_right_side_cap() -> None:
    join = _ops.HashJoin(ORDERS, CUSTOMERS, ["customer_id"], "inner", W, right_name="customers",
                         max_right_rows=5)
    join.add_right([[i, "n", "r"] for i in range(5)])
    with pytest.raises(PermanentError) as e:
        join.add_right([[9, "n", "r"]])
    assert e.value.reason == "JoinTooLarge" and "'customers'" in str(e.value)
    assert "5 rows" in str(e.value)


def test_join_errors() -> None:
    with pytest.raises(PermanentError) as e:
        _ops.HashJoin(ORDERS, CUSTOMERS, ["region"], "inner", W, left_name="orders")
    assert e.value.reason == "UnknownColumn" and "'orders'" in str(e.value)
    with pytest.raises(PermanentError, match="join type 'full'"):
        _ops.HashJoin(ORDERS, CUSTOMERS, ["customer_id"], "full", W)
    with pytest.raises(PermanentError, match="at least one key"):
        _ops.HashJoin(ORDERS, CUSTOMERS, [], "inner", W)


def test_repeated_collision_names_stay_unique() -> None:
    left = columns(("k", values.INTEGER), ("v", values.INTEGER), ("right_v", values.INTEGER))
    right = columns(("k", values.INTEGER), ("v", values.INTEGER))
    names = [c.name for c in _ops.HashJoin(left, right, ["k"], "inner", W).columns]
    assert names == ["k", "v", "right_v", "right_right_v"]


# -- group by -------------------------------------------------------------------------------------

SALES = columns(("region", values.STRING), ("qty", values.INTEGER), ("amount", values.DECIMAL),
                ("rate", values.FLOAT), ("day", values.DATE))
SALES_ROWS = [
    ["EU", 1, Decimal("10.10"), 0.5, dt.date(2024, 1, 3)],
    ["US", 2, Decimal("5.00"), None, dt.date(2024, 1, 1)],
    ["EU", 4, None, 1.5, None],
    [None, 3, Decimal("1.01"), 2.0, dt.date(2024, 2, 1)],
    ["EU", None, Decimal("0.20"), None, dt.date(2023, 12, 31)],
    [None, 5, Decimal("2.02"), None, None],
]


def group(keys: list[str], aggs: list[tasks_pb2.AggregateFunction], rows: list[list[Any]],
          **kw: Any) -> tuple[_ops.GroupBy, list[list[Any]]]:
    g = _ops.plan_group_by(SALES, keys, aggs, W, "sales", **kw)
    for start in range(0, len(rows), 2):
        g.add(rows[start:start + 2])
    return g, g.results()


def test_group_by_functions_nulls_and_types() -> None:
    g, rows = group(["region"], [
        agg("count", name="n"), agg("count", "qty", "n_qty"), agg("sum", "qty", "qty"),
        agg("sum", "amount", "total"), agg("avg", "qty", "avg_qty"),
        agg("avg", "amount", "avg_amount"), agg("sum", "rate", "rate"),
        agg("avg", "rate", "avg_rate"), agg("min", "day", "first"), agg("max", "day", "last"),
        agg("max", "amount", "top")], SALES_ROWS)
    assert [(c.name, c.type) for c in g.columns] == [
        ("region", values.STRING), ("n", values.INTEGER), ("n_qty", values.INTEGER),
        ("qty", values.INTEGER), ("total", values.DECIMAL), ("avg_qty", values.DECIMAL),
        ("avg_amount", values.DECIMAL), ("rate", values.FLOAT), ("avg_rate", values.FLOAT),
        ("first", values.DATE), ("last", values.DATE), ("top", values.DECIMAL)]
    by_region = {r[0]: r for r in rows}
    assert list(by_region) == ["EU", "US", None]  # first-seen order, NULL is one group
    eu = by_region["EU"]
    assert eu[1:5] == [3, 2, 5, Decimal("10.30")]
    assert str(eu[5]) == "2.5000"  # avg of ints: 4 decimal places (MariaDB)
    assert str(eu[6]) == "5.150000"  # avg of 2-place decimals: 6 places
    assert eu[7:9] == [2.0, 1.0]
    assert eu[9:] == [dt.date(2023, 12, 31), dt.date(2024, 1, 3), Decimal("10.10")]
    us = by_region["US"]
    assert us[7:9] == [None, None]  # all NULL -> NULL
    nulls = by_region[None]
    assert nulls[1:5] == [2, 2, 8, Decimal("3.03")] and str(nulls[5]) == "4.0000"
    assert isinstance(eu[3], int) and isinstance(eu[4], Decimal)


def test_avg_rounds_half_up_like_mariadb() -> None:
    _, rows = group([], [agg("avg", "qty", "a"), agg("avg", "amount", "b")],
                    [["x", 1, Decimal("0.01"), None, None], ["x", 2, Decimal("0.02"), None, None],
                     ["x", 2, Decimal("0.02"), None, None]])
    assert [str(v) for v in rows[0]] == ["1.6667", "0.016667"]


def test_exact_decimal_sums_beyond_float_and_default_precision() -> None:
    big = Decimal("12345678901234567890123456789.01")
    _, rows = group([], [agg("sum", "amount", "s")],
                    [["x", 0, big, None, None], ["x", 0, Decimal("0.01"), None, None]])
    assert rows == [[Decimal("12345678901234567890123456789.02")]]


def test_no_keys_gives_one_row_even_for_no_input() -> None:
    _, rows = group([], [agg("count", name="n"), agg("sum", "amount", "s"),
                         agg("min", "day", "d")], [])
    assert rows == [[0, None, None]]
    _, rows = group(["region"], [agg("count", name="n")], [])
    assert rows == []


def test_group_by_errors() -> None:
    with pytest.raises(PermanentError) as e:
        _ops.plan_group_by(SALES, ["country"], [agg("count", name="n")], W, "sales")
    assert e.value.reason == "UnknownColumn" and "'sales'" in str(e.value)
    with pytest.raises(PermanentError) as e:
        _ops.plan_group_by(SALES, [], [agg("sum", "region", "s")], W, "sales")
    assert e.value.reason == "InvalidAggregate" and "string" in str(e.value)
    with pytest.raises(PermanentError, match="appears twice"):
        _ops.plan_group_by(SALES, ["region"], [agg("count", name="region")], W, "sales")
    with pytest.raises(PermanentError, match="median"):
        _ops.plan_group_by(SALES, [], [agg("median", "qty", "m")], W, "sales")
    with pytest.raises(PermanentError, match="needs a column"):
        _ops.plan_group_by(SALES, [], [agg("max", name="m")], W, "sales")


def test_group_by_bad_cells_and_cap() -> None:
    with pytest.raises(PermanentError) as e:
        group([], [agg("sum", "qty", "s")], [["x", 1, None, None, None],
                                             ["x", "two", None, None, None]])
    assert e.value.reason == "InvalidAggregate" and "row 2" in str(e.value)
    assert "two" not in str(e.value)
    with pytest.raises(PermanentError) as e:
        group(["qty"], [agg("count", name="n")], [[None, i, None, None, None]
                                                  for i in range(4)], max_groups=3)
    assert e.value.reason == "TooManyGroups"


def test_default_output_names() -> None:
    g = _ops.plan_group_by(SALES, [], [agg("count"), agg("sum", "qty")], W, "sales")
    assert [c.name for c in g.columns] == ["count", "sum_qty"]


def test_widen() -> None:
    assert _ops.widen(values.INTEGER, values.DECIMAL) == values.DECIMAL
    assert _ops.widen(values.DECIMAL, values.FLOAT) == values.FLOAT
    assert _ops.widen(values.STRING, values.INTEGER) is None
    assert _ops.widen(0, values.STRING) == values.STRING
