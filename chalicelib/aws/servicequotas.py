"""Service Quotas, by intent: a quota's value."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # boto3-stubs: for mypy only, never in the Lambda zip
    from mypy_boto3_service_quotas import ServiceQuotasClient


def quota_value(servicequotas: ServiceQuotasClient, service_code: str, quota_code: str) -> float | None:
    """The quota's applied value (None when AWS gives none); AWS's refusals are raised for the caller to word."""
    answer = servicequotas.get_service_quota(ServiceCode=service_code, QuotaCode=quota_code)
    value = answer.get("Quota", {}).get("Value")
    return float(value) if value is not None else None
