"""The candidate types' current Spot price in each zone and the run's cost ceiling: what `start-cluster --dry-run`
prints."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest

from localrun.moto_patches import set_spot_price
from operations.start.spot_prices import format_price_table, price_table

ZONES = ["us-east-1a", "us-east-1b"]


@pytest.fixture
def ec2(aws):
    return boto3.client("ec2", region_name="us-east-1")


def test_the_table_holds_the_latest_price_of_each_candidate_type_in_each_zone_asked(ec2):
    set_spot_price("m5.large", "us-east-1a", 0.0351)
    set_spot_price("c5.large", "us-east-1b", 0.1204)

    rows = price_table(ec2, ["m5.large", "c5.large"], ZONES, datetime.now(UTC))

    assert [(row.instance_type, row.zone, row.price) for row in rows] == [
        ("m5.large", "us-east-1a", 0.0351), ("m5.large", "us-east-1b", 0.00001),
        ("c5.large", "us-east-1a", 0.00001), ("c5.large", "us-east-1b", 0.1204)]


def test_the_printed_table_marks_prices_above_machine_price_and_ends_with_the_cost_ceiling(ec2):
    set_spot_price("m5.large", "us-east-1a", 0.0351)
    set_spot_price("m5.large", "us-east-1b", 0.0402)
    set_spot_price("c5.large", "us-east-1b", 0.1204)
    rows = [row for row in price_table(ec2, ["m5.large", "c5.large"], ZONES, datetime.now(UTC))
            if (row.instance_type, row.zone) != ("c5.large", "us-east-1a")]  # c5.large not offered in 1a

    assert format_price_table(rows, ["m5.large", "c5.large"], ZONES, machines=4, machine_price=0.1) == [
        "Spot prices now (Linux, USD per machine-hour; * above MACHINE_PRICE):",
        "  instance type  us-east-1a  us-east-1b",
        "  m5.large         0.03510     0.04020",
        "  c5.large               -     0.12040*",
        "Cost ceiling: 4 machines x MACHINE_PRICE $0.1 = $0.4 per hour.",
        "Where a price is above MACHINE_PRICE, machines of that type and zone would cost more than the ceiling allows."]


def test_no_price_at_all_says_so_and_still_gives_the_ceiling():
    assert format_price_table([], ["m5.large"], ["us-east-1a"], machines=1, machine_price=0.05) == [
        "No Spot price found for m5.large in us-east-1a (not offered as Spot there?).",
        "Cost ceiling: 1 machine x MACHINE_PRICE $0.05 = $0.05 per hour."]

