"""The business rules alone: settings, the query (on a real SQLite file) and the decisions."""
from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from goreports_example_stages.rules import (COLUMNS, Assessor, BadOrder, InvalidRules, Rules,
                                            build_query, parse_rules)

AS_OF = {"asOf": "2024-12-31"}
D = dt.date

# The known answer for the fixture database (conftest.ORDERS) with the default rules.
EXPECTED = [
    [1, "Quiet Ltd", "EU", "enterprise", 2, 0.0, D(2024, 7, 15), 169, Decimal("1500.50"),
     "medium", "no paid order for 169 days"],
    [2, "Busy GmbH", "EU", "mid-market", 4, 0.5, D(2024, 12, 1), 30, Decimal("500.00"),
     "medium", "2 of 4 orders refunded or cancelled"],
    [4, "Big Gone SA", "NA", "enterprise", 2, 0.5, D(2024, 3, 1), 305, Decimal("60000.00"),
     "high", "no paid order for 305 days"],
    [6, "Both Bad", "NA", "small business", 3, 0.6667, D(2024, 5, 1), 244, Decimal("100.10"),
     "high", "no paid order for 244 days; 2 of 3 orders refunded or cancelled"],
    [7, "Tiny", "EU", "small business", 1, 0.0, D(2024, 1, 5), 361, Decimal("9.99"),
     "medium", "no paid order for 361 days"],
]


def run(db: Path, rules: Rules, batch: int = 2) -> list[list[Any]]:
    """The query and the assessor the way the stage drives them: batch by batch."""
    sql, params = build_query(rules)
    con = sqlite3.connect(db)
    cur = con.execute(sql, params)
    assessor, out = Assessor(rules), []
    while rows := cur.fetchmany(batch):
        out += assessor.feed(rows)
    out += assessor.finish()
    con.close()
    return out


def test_defaults() -> None:
    r = parse_rules(AS_OF)
    assert r == Rules(as_of=D(2024, 12, 31))
    assert (r.window_start, r.inactive_days, r.refund_rate, r.high_revenue) == (
        D(2024, 1, 1), 90, 0.25, Decimal(50000))


def test_settings_from_a_struct() -> None:
    """google.protobuf.Struct numbers arrive as floats: 90.0 is a day count."""
    r = parse_rules({**AS_OF, "inactiveDays": 60.0, "lookbackDays": 180.0, "refundRate": 0.5,
                     "refundMinOrders": 2.0, "minRevenue": "250.50", "highRevenue": 1000,
                     "regions": ["eu", "NA", "eu"], "segments": ["small business"]})
    assert r == Rules(as_of=D(2024, 12, 31), lookback_days=180, inactive_days=60,
                      refund_rate=0.5, refund_min_orders=2, min_revenue=Decimal("250.50"),
                      high_revenue=Decimal(1000), regions=("EU", "NA"),
                      segments=("small business",))


@pytest.mark.parametrize("settings, message", [
    ({}, "asOf is required"),
    ({"asOf": "31/12/2024"}, "asOf must be a date YYYY-MM-DD, got '31/12/2024'"),
    ({**AS_OF, "inactiveDay": 90}, "unknown setting(s) inactiveDay; known: asOf, lookbackDays"),
    ({**AS_OF, "inactiveDays": 90.5}, "inactiveDays must be a whole number, got 90.5"),
    ({**AS_OF, "inactiveDays": True}, "inactiveDays must be a whole number, got True"),
    ({**AS_OF, "inactiveDays": 400}, "inactiveDays must be between 1 and 365, got 400"),
    ({**AS_OF, "refundRate": 25}, "refundRate must be a fraction above 0 and at most 1"),
    ({**AS_OF, "minRevenue": "lots"}, "minRevenue must be an amount of 0 or more"),
    ({**AS_OF, "highRevenue": -1}, "highRevenue must be an amount of 0 or more"),
    ({**AS_OF, "regions": "EU"}, "regions must be a list of codes"),
    ({**AS_OF, "regions": ["EU'; DROP TABLE orders; --"]}, "regions must be a list of codes"),
    ({**AS_OF, "segments": [""]}, "segments must be a list of names"),
])
def test_bad_settings_are_named(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRules) as e:
        parse_rules(settings)
    assert message in str(e.value)


def test_known_answer_with_the_default_rules(sales_db: Path) -> None:
    assert run(sales_db, parse_rules(AS_OF)) == EXPECTED
    assert [name for name, _ in COLUMNS] == ["customer_id", "customer", "region", "segment",
                                            "orders", "refund_rate", "last_paid_order",
                                            "days_inactive", "revenue_at_risk", "tier", "reasons"]
    assert all(len(row) == len(COLUMNS) for row in EXPECTED)


def test_thresholds_change_the_answer(sales_db: Path) -> None:
    rules = parse_rules({**AS_OF, "minRevenue": 10, "inactiveDays": 200, "refundRate": 0.6,
                         "highRevenue": 1000})
    # Tiny (9.99) is below minRevenue; Quiet Ltd (169 days) is not inactive enough; Busy GmbH
    # (50% refunds) is under the rate; Both Bad keeps only its inactivity (244 >= 200) and its
    # refund rate (67% >= 60%); highRevenue 1000 makes Big Gone SA high on its own.
    assert [(r[0], r[9], r[10]) for r in run(sales_db, rules)] == [
        (4, "high", "no paid order for 305 days"),
        (6, "high", "no paid order for 244 days; 2 of 3 orders refunded or cancelled")]


def test_refund_rule_needs_enough_orders(sales_db: Path) -> None:
    rules = parse_rules({**AS_OF, "refundMinOrders": 2, "inactiveDays": 365})
    # With 2 orders enough, Big Gone SA's 1 refund of 2 counts; no one is inactive for a year.
    assert [(r[0], r[10]) for r in run(sales_db, rules)] == [
        (2, "2 of 4 orders refunded or cancelled"), (4, "1 of 2 orders refunded or cancelled"),
        (6, "2 of 3 orders refunded or cancelled")]


def test_region_and_segment_filters_are_bound_parameters(sales_db: Path) -> None:
    rules = parse_rules({**AS_OF, "regions": ["na"], "segments": ["small business", "enterprise"]})
    sql, params = build_query(rules)
    assert "NA" not in sql and "small business" not in sql
    assert params == {"window_start": "2024-01-01", "as_of": "2024-12-31", "region_0": "NA",
                      "segment_0": "small business", "segment_1": "enterprise"}
    assert [r[0] for r in run(sales_db, rules)] == [4, 6]
    assert [r[0] for r in run(sales_db, parse_rules({**AS_OF, "regions": ["EU"],
                                                     "segments": ["enterprise"]}))] == [1]


def test_window_is_after_start_and_up_to_as_of(sales_db: Path) -> None:
    """Old Co's only order in range is on the window's first day, which is excluded; Fine Inc's
    cancellation after asOf does not count; moving asOf back brings Old Co in."""
    assert 5 not in [r[0] for r in run(sales_db, parse_rules(AS_OF))]
    back = run(sales_db, parse_rules({"asOf": "2024-06-30", "lookbackDays": 400}))
    old = next(r for r in back if r[0] == 5)
    assert (old[4], old[6], old[8]) == (2, D(2024, 1, 1), Decimal("5005.00"))


def test_customers_leave_as_soon_as_their_orders_end() -> None:
    """Streaming: a customer's row comes out when the next customer starts, and the assessor
    holds one customer at a time whatever the number of orders."""
    a = Assessor(parse_rules(AS_OF))
    assert a.feed([(1, "A", "EU", "x", "2024-01-10", "paid", "10")] * 1000) == []
    out = a.feed([(2, "B", "EU", "x", "2024-12-30", "paid", "10")])
    assert [r[0] for r in out] == [1] and out[0][4] == 1000
    assert a.finish() == [] and (a.customers, a.orders) == (2, 1001)


@pytest.mark.parametrize("rows, message", [
    ([(2, "B", "EU", "x", "2024-05-01", "paid", "1"), (1, "A", "EU", "x", "2024-05-01", "paid", "1")],
     "orders are not sorted by customer: 1 came after 2"),
    ([(3, "C", "EU", "x", "2024-05-01", "paid", "12,50")], "customer 3: order amount '12,50'"),
    ([(3, "C", "EU", "x", "May 1st", "paid", "1")], "customer 3: order date 'May 1st'"),
])
def test_bad_rows_are_refused_with_the_customer(rows: list[tuple[Any, ...]], message: str) -> None:
    with pytest.raises(BadOrder) as e:
        Assessor(parse_rules(AS_OF)).feed(rows)
    assert message in str(e.value)
