"""The Resource Groups Tagging API, by intent: resources found by their tags."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip or the worker image
    from mypy_boto3_resourcegroupstaggingapi import ResourceGroupsTaggingAPIClient


def tagged_alarm_names(tagging: ResourceGroupsTaggingAPIClient, key: str, value: str) -> tuple[str, ...]:
    """Names of the alarms carrying the tag key=value, whatever their names (the Resource Groups Tagging API: one
    paginated call instead of a ListTagsForResource per alarm)."""
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": key, "Values": [value]}], ResourceTypeFilters=["cloudwatch:alarm"])
    # arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME, and a name may itself hold ':'
    return tuple(sorted(mapping["ResourceARN"].split(":alarm:", 1)[1] for page in pages
                        for mapping in page["ResourceTagMappingList"] if ":alarm:" in mapping["ResourceARN"]))
