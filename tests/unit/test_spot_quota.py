"""The Spot vCPU quota preflight: a run asking more vCPUs than its quota is refused before anything is created, and a
quota that cannot be read is a warning, never a crash."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.monitor import spot_quota
from chalicelib.monitor.spot_quota import DL, G_AND_VT, INF, P2_TO_P4, P5, STANDARD, TRN, F, X, quota_for
from localrun.moto_patches import set_service_quota
from tests.iam_engine import iam_enforced, policy_session


@pytest.mark.parametrize("instance_type, quota", [
    ("m5.large", STANDARD), ("c7gn.xlarge", STANDARD), ("r7g.large", STANDARD), ("t3.micro", STANDARD),
    ("a1.large", STANDARD), ("d3.xlarge", STANDARD), ("h1.2xlarge", STANDARD), ("i4i.large", STANDARD),
    ("im4gn.large", STANDARD), ("z1d.large", STANDARD),
    ("g4dn.xlarge", G_AND_VT), ("gr6.4xlarge", G_AND_VT), ("vt1.3xlarge", G_AND_VT), ("p3.2xlarge", P2_TO_P4),
    ("p4d.24xlarge", P2_TO_P4), ("p5.48xlarge", P5), ("inf2.xlarge", INF), ("trn1.2xlarge", TRN),
    ("dl1.24xlarge", DL), ("f1.2xlarge", F), ("x2idn.16xlarge", X),
    ("hpc7a.96xlarge", None), ("u-6tb1.metal", None), ("mac1.metal", None),
])
def test_each_instance_family_counts_against_its_spot_quota(instance_type, quota):
    assert quota_for(instance_type) == quota


@pytest.fixture
def clients(aws):
    return boto3.client("service-quotas", region_name="us-east-1"), boto3.client("ec2", region_name="us-east-1")


def test_a_run_asking_more_vcpus_than_a_new_accounts_quota_is_refused_with_the_quota_and_how_to_raise_it(clients):
    check = spot_quota.check(*clients, ["m5.xlarge", "c5.large"], 2)

    assert check.refused and check.asked_vcpus == 8 and check.warnings == []
    assert check.refusal == (
        "The Spot vCPU quota is too small for this run: CLUSTER_MACHINES 2 x 4 vCPUs (the largest of m5.xlarge, "
        "c5.large) = 8 vCPUs, but in us-east-1 \"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests\" "
        "(L-34B43A08) is 5 vCPUs (room for 1 machine). Raise it in the Service Quotas console (Amazon EC2, "
        "L-34B43A08) or with `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code "
        "L-34B43A08 --desired-value 8 --region us-east-1`, or lower CLUSTER_MACHINES; Spot machines already running "
        "in the account use the same quota and are not counted here.")


def test_the_same_run_passes_once_the_quota_is_raised(clients):
    set_service_quota("L-34B43A08", 8)

    check = spot_quota.check(*clients, ["m5.xlarge", "c5.large"], 2)

    assert not check.refused and check.warnings == [] and [reading.value for reading in check.readings] == [8.0]


def test_machines_split_over_two_quotas_fit_when_both_together_hold_them(clients):
    set_service_quota("L-34B43A08", 8)
    set_service_quota("L-3819A6DF", 4)
    assert not spot_quota.check(*clients, ["m5.xlarge", "g4dn.xlarge"], 3).refused  # 2 under Standard, 1 under G
    refused = spot_quota.check(*clients, ["m5.xlarge", "g4dn.xlarge"], 4)
    assert "(room for 3 machines)" in refused.refusal
    assert "--quota-code L-34B43A08 --desired-value 16" in refused.refusal


def test_a_quota_the_caller_may_not_read_is_a_warning_and_the_run_is_not_refused(aws):
    with iam_enforced():
        session = policy_session({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ec2:DescribeInstanceTypes", "Resource": "*"}]})
        check = spot_quota.check(session.client("service-quotas"), session.client("ec2"), ["m5.xlarge"], 4)

    assert not check.refused
    assert check.warnings == [
        "Could not read the Spot vCPU quota \"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests\" "
        "(L-34B43A08) in us-east-1: AccessDeniedException. This run asks up to 16 vCPUs of it (4 x 4); check it in "
        "the Service Quotas console (Amazon EC2)."]


def test_instance_types_the_caller_may_not_describe_are_a_warning_too(aws):
    with iam_enforced():
        session = policy_session({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "servicequotas:GetServiceQuota", "Resource": "*"}]})
        check = spot_quota.check(session.client("service-quotas"), session.client("ec2"), ["m5.xlarge"], 4)

    assert not check.refused and check.warnings == [
        "Could not read the vCPUs of m5.xlarge (DescribeInstanceTypes: UnauthorizedOperation); the Spot vCPU quota "
        "was not checked."]


def test_unknown_types_and_types_without_a_spot_quota_are_named_and_left_out(clients):
    check = spot_quota.check(*clients, ["m5.large", "nosuch.large", "hpc7a.96xlarge"], 2)

    assert not check.refused and check.asked_vcpus == 4
    assert check.warnings == [
        "AWS does not know the instance type(s) nosuch.large in us-east-1; they were left out of the Spot vCPU quota "
        "check.",
        "hpc7a.96xlarge counts against no known Spot vCPU quota (not offered as Spot?); left out of the quota check."]
