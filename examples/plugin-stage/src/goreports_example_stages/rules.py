"""Revenue at risk: which customers may stop buying, and how much yearly revenue goes with them.

The business rules, as plain functions over plain rows (no database, no Redis), so they are
tested on their own and the stage module only moves rows.

A customer is *at risk* when, within the look-back window ending at `asOf`, it brought paid
revenue (at least `minRevenue`) and

- its last paid order is `inactiveDays` or more before `asOf` (it went quiet), or
- at least `refundRate` of its orders were refunded or cancelled, counted only from
  `refundMinOrders` orders on (one bad order out of one is noise, not a pattern).

The revenue at risk is the customer's paid revenue in the window. Tier `high` when both rules
fire or the revenue at risk reaches `highRevenue`, `medium` otherwise. `regions` (region codes)
and `segments` restrict which customers are looked at; they become bound SQL parameters.

Streaming: orders arrive sorted by customer; `Assessor` keeps one customer's running totals at a
time, so memory does not grow with the number of orders.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
BAD_STATUSES = frozenset({"refunded", "cancelled"})
PAID = "paid"
_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# (name, type name of goreports.core.values) of the dataset the stage writes, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("customer_id", "integer"), ("customer", "string"), ("region", "string"),
    ("segment", "string"), ("orders", "integer"), ("refund_rate", "float"),
    ("last_paid_order", "date"), ("days_inactive", "integer"), ("revenue_at_risk", "decimal"),
    ("tier", "string"), ("reasons", "string"),
)


class InvalidRules(ValueError):
    """The task's settings cannot be used; the message names the setting and what is allowed."""


class BadOrder(ValueError):
    """A row from the source breaks an assumption of the rules (order, amount, date)."""


# ------------------------------------------------------------------------------ the settings

@dataclass(frozen=True)
class Rules:
    as_of: dt.date
    lookback_days: int = 365
    inactive_days: int = 90
    refund_rate: float = 0.25
    refund_min_orders: int = 3
    min_revenue: Decimal = Decimal(0)
    high_revenue: Decimal = Decimal(50000)
    regions: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()

    @property
    def window_start(self) -> dt.date:
        """Orders strictly after this day and up to `as_of` are in the window."""
        return self.as_of - dt.timedelta(days=self.lookback_days)


SETTINGS = ("asOf", "lookbackDays", "inactiveDays", "refundRate", "refundMinOrders",
            "minRevenue", "highRevenue", "regions", "segments")


def _whole(settings: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = settings.get(key, default)
    # Struct numbers are floats: 90.0 is 90, 90.5 is not a day count.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise InvalidRules(f"{key} must be a whole number, got {value!r}")
    if not low <= int(value) <= high:
        raise InvalidRules(f"{key} must be between {low} and {high}, got {int(value)}")
    return int(value)


def _money(settings: Mapping[str, Any], key: str, default: Decimal) -> Decimal:
    value = settings.get(key, default)
    try:
        out = Decimal(str(value)) if not isinstance(value, bool) else None
    except InvalidOperation:
        out = None
    if out is None or not out.is_finite() or out < 0:
        raise InvalidRules(f"{key} must be an amount of 0 or more (e.g. 2500 or \"2500.00\"), "
                           f"got {value!r}")
    return out


def _codes(settings: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = settings.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and _CODE.match(v) for v in value):
        raise InvalidRules(f"{key} must be a list of codes (letters, digits, '-', '_'), "
                           f"got {value!r}")
    return tuple(dict.fromkeys(value))


def _codes_or_words(settings: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """Segments are words ("small business"): any non-empty text up to 64 characters."""
    value = settings.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 64
                                              for v in value):
        raise InvalidRules(f"{key} must be a list of names, got {value!r}")
    return tuple(dict.fromkeys(value))


def parse_rules(settings: Mapping[str, Any]) -> Rules:
    """Rules from the task's settings (camelCase keys, JSON values); every problem is named."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise InvalidRules(f"unknown setting(s) {', '.join(unknown)}; "
                           f"known: {', '.join(SETTINGS)}")
    if "asOf" not in settings:
        raise InvalidRules("asOf is required: the day the look-back window ends (YYYY-MM-DD)")
    try:
        as_of = dt.date.fromisoformat(str(settings["asOf"]))
    except ValueError:
        raise InvalidRules(f"asOf must be a date YYYY-MM-DD, got {settings['asOf']!r}") from None
    rate = settings.get("refundRate", 0.25)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise InvalidRules(f"refundRate must be a fraction above 0 and at most 1 (0.25 = 25%), "
                           f"got {rate!r}")
    lookback = _whole(settings, "lookbackDays", 365, 1, 3660)
    segments = _codes_or_words(settings, "segments")
    return Rules(
        as_of=as_of, lookback_days=lookback,
        inactive_days=_whole(settings, "inactiveDays", 90, 1, lookback),
        refund_rate=float(rate),
        refund_min_orders=_whole(settings, "refundMinOrders", 3, 1, 1_000_000),
        min_revenue=_money(settings, "minRevenue", Decimal(0)),
        high_revenue=_money(settings, "highRevenue", Decimal(50000)),
        regions=tuple(c.upper() for c in _codes(settings, "regions")),
        segments=segments,
    )


# ------------------------------------------------------------------------------- the query

def build_query(rules: Rules) -> tuple[str, dict[str, Any]]:
    """The orders of the window, sorted by customer; filters are bound parameters."""
    params: dict[str, Any] = {"window_start": rules.window_start.isoformat(),
                              "as_of": rules.as_of.isoformat()}
    where = ["o.order_date > :window_start", "o.order_date <= :as_of"]
    for column, key, values in (("r.code", "region", rules.regions),
                                ("c.segment", "segment", rules.segments)):
        if values:
            names = [f"{key}_{i}" for i in range(len(values))]
            params.update(zip(names, values))
            where.append(f"{column} IN ({', '.join(':' + n for n in names)})")
    sql = ("SELECT o.customer_id, c.name, r.code, c.segment, o.order_date, o.status, o.amount\n"
           "FROM orders o\n"
           "JOIN customers c ON c.id = o.customer_id\n"
           "JOIN regions r ON r.id = c.region_id\n"
           f"WHERE {' AND '.join(where)}\n"
           "ORDER BY o.customer_id")
    return sql, params


# ---------------------------------------------------------------------------- the decision

@dataclass
class _Customer:
    customer_id: int
    name: str
    region: str
    segment: str
    orders: int = 0
    bad: int = 0
    revenue: Decimal = field(default_factory=Decimal)
    last_paid: dt.date | None = None


def assess(c: _Customer, rules: Rules) -> list[Any] | None:
    """One output row (see COLUMNS) for a customer at risk, or None."""
    if c.revenue <= 0 or c.revenue < rules.min_revenue or c.last_paid is None:
        return None
    days = (rules.as_of - c.last_paid).days
    rate = c.bad / c.orders
    reasons = []
    if days >= rules.inactive_days:
        reasons.append(f"no paid order for {days} days")
    if c.orders >= rules.refund_min_orders and rate >= rules.refund_rate:
        reasons.append(f"{c.bad} of {c.orders} orders refunded or cancelled")
    if not reasons:
        return None
    revenue = c.revenue.quantize(CENT)
    tier = "high" if len(reasons) > 1 or revenue >= rules.high_revenue else "medium"
    return [c.customer_id, c.name, c.region, c.segment, c.orders, round(rate, 4), c.last_paid,
            days, revenue, tier, "; ".join(reasons)]


class Assessor:
    """Feed it order rows sorted by customer; it returns the rows of customers at risk as soon
    as each customer's orders are complete. Rows: (customer_id, name, region code, segment,
    order_date 'YYYY-MM-DD', status, amount as exact text)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.customers = 0
        self.orders = 0
        self._current: _Customer | None = None

    def feed(self, rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
        out: list[list[Any]] = []
        for row in rows:
            customer_id, name, region, segment, day, status, amount = row
            cur = self._current
            if cur is None or customer_id != cur.customer_id:
                if cur is not None and customer_id < cur.customer_id:
                    raise BadOrder(f"orders are not sorted by customer: {customer_id} came after "
                                   f"{cur.customer_id}")
                self._close(out)
                cur = self._current = _Customer(customer_id, name, region, segment)
                self.customers += 1
            self.orders += 1
            cur.orders += 1
            if status in BAD_STATUSES:
                cur.bad += 1
            elif status == PAID:
                cur.revenue += _amount(amount, customer_id)
                paid_on = _day(day, customer_id)
                if cur.last_paid is None or paid_on > cur.last_paid:
                    cur.last_paid = paid_on
        return out

    def finish(self) -> list[list[Any]]:
        out: list[list[Any]] = []
        self._close(out)
        return out

    def _close(self, out: list[list[Any]]) -> None:
        if self._current is not None:
            row = assess(self._current, self.rules)
            if row is not None:
                out.append(row)
            self._current = None


def _amount(value: Any, customer_id: int) -> Decimal:
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        out = Decimal("NaN")
    if not out.is_finite():
        raise BadOrder(f"customer {customer_id}: order amount {value!r} is not a number")
    return out


def _day(value: Any, customer_id: int) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise BadOrder(f"customer {customer_id}: order date {value!r} is not YYYY-MM-DD") from None
