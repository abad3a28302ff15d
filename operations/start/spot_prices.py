"""The current Spot price of each candidate type in each zone, and the table `start-cluster --dry-run` prints.

DescribeSpotPriceHistory with StartTime = EndTime = now gives each pool's effective price at that moment: "When you
specify a start and end time, the operation returns the prices of the instance types within that time range. It
also returns the last price change before the start time, which is the effective price as of the start time"
(Amazon EC2 API Reference, DescribeSpotPriceHistory). Linux machines are listed under "Linux/UNIX" or, in older
accounts, "Linux/UNIX (Amazon VPC)"; both are asked and the latest row of a pool wins. The botocore paginator reads
the pages, at most `max_pages` of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import aws

if TYPE_CHECKING:  # boto3-stubs: for mypy only
    from mypy_boto3_ec2 import EC2Client

MAX_PAGES = 5
PAGE_SIZE = 1000  # the largest MaxResults DescribeSpotPriceHistory takes
PRODUCTS = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")


@dataclass(frozen=True)
class PriceRow:
    instance_type: str
    zone: str
    price: float  # USD per hour
    when: datetime | None


def price_table(ec2: EC2Client, instance_types: Iterable[str], zones: Iterable[str] | None, now: datetime, *,
                max_pages: int = MAX_PAGES) -> list[PriceRow]:
    """The latest Linux Spot price per (type, zone) as of `now`, in the order of `instance_types`, then zone.
    `zones` empty or None: every zone of the region."""
    types, zones = list(dict.fromkeys(instance_types)), list(dict.fromkeys(zones or ()))
    # a dict, not the stubs' request TypedDict: that spells InstanceTypes as a Literal of every type EC2 knew when
    # they were made, and ours are the user's strings
    params: dict[str, Any] = {"InstanceTypes": types, "ProductDescriptions": list(PRODUCTS), "StartTime": now,
                              "EndTime": now,
                              "PaginationConfig": {"MaxItems": max_pages * PAGE_SIZE, "PageSize": PAGE_SIZE}}
    if zones:
        params["Filters"] = [{"Name": "availability-zone", "Values": zones}]
    latest: dict[tuple[str, str], PriceRow] = {}
    for item in aws.paged(ec2, "describe_spot_price_history", "SpotPriceHistory", **params):
        if item.get("ProductDescription") not in PRODUCTS or item.get("InstanceType") not in types:
            continue
        if zones and item.get("AvailabilityZone") not in zones:
            continue
        row = PriceRow(item["InstanceType"], item["AvailabilityZone"], float(item["SpotPrice"]), item.get("Timestamp"))
        held = latest.get((row.instance_type, row.zone))
        if held is None or _later(row.when, held.when):
            latest[(row.instance_type, row.zone)] = row
    return sorted(latest.values(), key=lambda row: (types.index(row.instance_type), row.zone))


def format_price_table(rows: list[PriceRow], instance_types: Iterable[str], zones: Iterable[str] | None, *,
                       machines: int, machine_price: float) -> list[str]:
    """Lines for a terminal: one row per candidate type, one column per zone ("-": no Spot price there, the type
    is not offered in that zone), a "*" on prices above MACHINE_PRICE, then the run's cost ceiling per hour."""
    types = list(dict.fromkeys(instance_types))
    zones = list(dict.fromkeys(zones or ())) or sorted({row.zone for row in rows})
    prices = {(row.instance_type, row.zone): row.price for row in rows}
    ceiling = (f"Cost ceiling: {machines} machine{'s' if machines != 1 else ''} x MACHINE_PRICE ${machine_price:g} = "
               f"${machines * machine_price:.4g} per hour.")
    if not rows:
        return [f"No Spot price found for {', '.join(types)}" + (f" in {', '.join(zones)}" if zones else "")
                + " (not offered as Spot there?).", ceiling]
    width = max(len("instance type"), *(len(name) for name in types))
    cells = {zone: max(len(zone), 9) for zone in zones}
    lines = ["Spot prices now (Linux, USD per machine-hour; * above MACHINE_PRICE):",
             "  " + "instance type".ljust(width) + "".join("  " + zone.rjust(cells[zone]) for zone in zones)]
    above = False
    for name in types:
        row = "  " + name.ljust(width)
        for zone in zones:
            price = prices.get((name, zone))
            text = "- " if price is None else f"{price:.5f}" + ("*" if price > machine_price else " ")
            above = above or (price is not None and price > machine_price)
            row += "  " + text.rjust(cells[zone])
        lines.append(row.rstrip())
    lines.append(ceiling)
    if above:
        lines.append("Where a price is above MACHINE_PRICE, machines of that type and zone would cost more than "
                     "the ceiling allows.")
    return lines


def _later(a: datetime | None, b: datetime | None) -> bool:
    if a is None:
        return False
    return b is None or a.timestamp() > b.timestamp()
