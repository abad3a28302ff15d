"""What ties a DS run's resources to its APP_NAME: exactly that app's ECS config in the fleet's user data, the
queue and the log groups its task definition names."""

from __future__ import annotations

from base64 import b64encode
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from chalicelib.aws.ecs import Container, TaskDefinition
from operations.adopt.dsownership import loads_ecs_config, logged_groups, polled_queues, same_queue
from tests.integration.ds_world import ds_user_data


def encoded(text: str) -> str:
    return b64encode(text.encode()).decode()


def mime_with_base64_part(script: str) -> str:
    """A multipart whose script part is itself base64 (MIMEText does that for a utf-8 charset)."""
    document = MIMEMultipart()
    document.attach(MIMEText(script, _subtype="x-shellscript", _charset="utf-8"))
    return encoded(document.as_string())


@pytest.mark.parametrize("user_data", [
    ds_user_data("s3://bucket/ecsconfigs/DSApp_ecs.config"),
    mime_with_base64_part("#!/bin/bash\naws s3 cp s3://bucket/ecsconfigs/DSApp_ecs.config /etc/ecs/ecs.config"),
    encoded("#!/bin/bash\naws s3 cp 's3://bucket/ecsconfigs/DSApp_ecs.config' /etc/ecs/ecs.config"),
    encoded("aws s3 cp s3://bucket/ecsconfigs/DSApp_ecs.config /etc/ecs/ecs.config\n")[:-4] + "\n" +
    encoded("aws s3 cp s3://bucket/ecsconfigs/DSApp_ecs.config /etc/ecs/ecs.config\n")[-4:],  # wrapped base64
])
def test_user_data_that_loads_the_apps_ecs_config_ties_the_fleet(user_data):
    assert loads_ecs_config(user_data, "DSApp")


@pytest.mark.parametrize("user_data", [
    ds_user_data("s3://bucket/ecsconfigs/Payments_ecs.config"),
    ds_user_data("s3://bucket/ecsconfigs/XDSApp_ecs.config"),
    ds_user_data("s3://bucket/ecsconfigs/DSApp_ecs.config.old"),
    ds_user_data("s3://bucket/other/ecsconfigs/DSApp_ecs.config"),
    ds_user_data("s3://bucket/ecsconfigs/DSApp_ecs.configs"),
    encoded("# ecsconfigs/DSApp_ecs.config, not copied from anywhere"),
    "not base64 at all: s3://bucket/ecsconfigs/DSApp_ecs.config",
    "",
])
def test_user_data_loading_anything_else_does_not(user_data):
    assert not loads_ecs_config(user_data, "DSApp")


def definition(*containers: Container) -> TaskDefinition:
    return TaskDefinition(arn="arn:aws:ecs:us-east-1:123456789012:task-definition/DSAppTask:3", family="DSAppTask",
                          revision=3, containers=containers)


def test_the_task_definition_names_its_queue_and_its_log_groups_as_dss_does():
    worker = Container(name="DSApp", environment={
        "SQS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/DSAppQueue", "LOG_GROUP_NAME": "DSApp",
        "AWS_SECRET_ACCESS_KEY": "not a queue"}, log_driver="awslogs",
        log_options={"awslogs-group": "DSApp_perInstance", "awslogs-region": "us-east-1"})
    sidecar = Container(name="sidecar", environment={}, log_driver="json-file", log_options={"awslogs-group": "x"})

    assert polled_queues(definition(worker, sidecar)) == (worker.environment["SQS_QUEUE_URL"],)
    assert logged_groups(definition(worker, sidecar)) == ("DSApp", "DSApp_perInstance")
    assert polled_queues(definition(sidecar)) == () and logged_groups(definition(sidecar)) == ()


QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/Q"


@pytest.mark.parametrize(("other", "same"), [
    (QUEUE + "/", True),
    (QUEUE + "2", False),
    ("https://sqs.us-east-1.amazonaws.com/999999999999/Q", False),
    ("https://sqs.eu-west-1.amazonaws.com/123456789012/Q", False),
])
def test_queue_urls_are_one_queue_only_with_region_account_and_name_alike(other, same):
    assert same_queue(QUEUE, other) is same
