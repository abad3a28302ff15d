"""`setup` on moto: what AWS holds afterwards, and that a second run changes nothing."""

import json

from click.testing import CliRunner

from chalicelib import aws as clients
from cli import cli
from operations.setup import iam, resources
from tests.conftest import make_settings
from tests.integration.world import snapshot, write_config

FOURTEEN_DAYS = "1209600"


def _queue_attributes(settings, name):
    sqs = clients.client("sqs", settings)
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_setup_creates_queues_with_redrive_and_fourteen_day_retention(aws, settings):
    resources.setup(settings)
    dead = _queue_attributes(settings, "user_DeadMessages")
    jobs = _queue_attributes(settings, "TestAppQueue")
    assert dead["MessageRetentionPeriod"] == FOURTEEN_DAYS
    assert jobs["MessageRetentionPeriod"] == FOURTEEN_DAYS
    assert jobs["VisibilityTimeout"] == "600"
    redrive = json.loads(jobs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dead["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 3


def test_setup_creates_the_task_definition_the_worker_needs(aws):
    settings = make_settings(CPU_SHARES=2048, MEMORY=3000, ENVIRONMENT={"THREADS": "4"})
    iam.setup_account(settings)
    resources.setup(settings)
    ecs = clients.client("ecs", settings)
    definition = ecs.describe_task_definition(taskDefinition="TestAppTask")["taskDefinition"]
    [container] = definition["containerDefinitions"]
    assert container["name"] == "TestApp"
    assert container["image"] == "example/worker:1"
    assert (container["cpu"], container["memory"]) == (2048, 3000)
    assert container["logConfiguration"] == {"logDriver": "awslogs", "options": {
        "awslogs-group": "TestApp_perInstance", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "TestApp"}}
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert json.loads(environment["DSR_CONFIG"])["APP_NAME"] == "TestApp"
    assert environment["THREADS"] == "4"
    assert not [name for name in environment if name.startswith("AWS_")]
    assert "AWS_SECRET_ACCESS_KEY" not in environment["DSR_CONFIG"]
    assert definition["taskRoleArn"].endswith(":role/TestApp-task-role")
    # the machine's instance id, as its boot script wrote it, read-only: no container asks the metadata service
    assert definition["volumes"] == [{"name": "dsr-host", "host": {"sourcePath": "/var/lib/dsr/host"}}]
    assert container["mountPoints"] == [{"sourceVolume": "dsr-host", "containerPath": "/etc/dsr/host",
                                         "readOnly": True}]
    assert definition.get("networkMode", "bridge") == "bridge"  # host networking would reach it again


def test_gpus_per_task_reserve_that_many_gpus_for_each_task_and_zero_again_reserves_none(aws):
    iam.setup_account(make_settings())
    ecs = clients.client("ecs", make_settings())

    def latest():
        definition = ecs.describe_task_definition(taskDefinition="TestAppTask")["taskDefinition"]
        return definition["revision"], definition["containerDefinitions"][0].get("resourceRequirements")

    resources.setup(make_settings())
    assert latest() == (1, None)
    resources.setup(make_settings(GPUS_PER_TASK=2))
    assert latest() == (2, [{"type": "GPU", "value": "2"}])
    resources.setup(make_settings(GPUS_PER_TASK=2))
    assert latest()[0] == 2  # unchanged
    resources.setup(make_settings(COMMAND=None, DOCKERHUB_TAG="ds/worker:1", GPUS_PER_TASK=1))
    assert latest() == (3, [{"type": "GPU", "value": "1"}])
    # DS image mode: the config is not in the container's environment, so only the GPU line tells the revisions apart
    resources.setup(make_settings(COMMAND=None, DOCKERHUB_TAG="ds/worker:1"))
    assert latest() == (4, None)


def test_setup_creates_cluster_service_log_groups_and_topic(aws, settings):
    resources.setup(settings)
    ecs = clients.client("ecs", settings)
    [cluster] = ecs.describe_clusters(clusters=["default"])["clusters"]
    assert cluster["status"] == "ACTIVE"
    [service] = ecs.describe_services(cluster="default", services=["TestAppService"])["services"]
    assert service["desiredCount"] == 0
    assert service["taskDefinition"].endswith(":task-definition/TestAppTask:1")
    # ECS's spot draining may stop a reclaimed machine's tasks at once (their SIGTERM releases the jobs)
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] == 0
    groups = {group["logGroupName"]: group.get("retentionInDays")
              for group in clients.client("logs", settings).describe_log_groups()["logGroups"]}
    assert groups == {"TestApp": 60, "TestApp_perInstance": 60}
    topics = [topic["TopicArn"] for topic in clients.client("sns", settings).list_topics()["Topics"]]
    assert [arn for arn in topics if arn.endswith(":Monitor")]


def test_rerunning_setup_leaves_aws_unchanged(aws, settings):
    iam.setup_account(settings)
    resources.setup(settings)
    before = snapshot(settings)
    report = resources.setup(settings)
    assert snapshot(settings) == before
    assert {change.action for change in report.changes} == {"unchanged"}


def test_setup_fixes_what_differs_from_the_config(aws, settings):
    resources.setup(settings)
    changed = make_settings(SQS_MESSAGE_VISIBILITY=120, JOB_RETRIES=5, MEMORY=2048)
    resources.setup(changed)
    jobs = _queue_attributes(settings, "TestAppQueue")
    assert jobs["VisibilityTimeout"] == "120"
    assert int(json.loads(jobs["RedrivePolicy"])["maxReceiveCount"]) == 5
    ecs = clients.client("ecs", settings)
    [service] = ecs.describe_services(cluster="default", services=["TestAppService"])["services"]
    assert service["taskDefinition"].endswith(":task-definition/TestAppTask:2")
    latest = ecs.describe_task_definition(taskDefinition="TestAppTask")["taskDefinition"]
    assert latest["containerDefinitions"][0]["memory"] == 2048


def test_setup_lets_spot_draining_stop_the_tasks_of_a_service_made_before(aws, settings):
    """A service made by an older setup waits for replacements before ECS's spot draining stops a reclaimed
    machine's tasks (minimum healthy 100 %): a full fleet has no room for them, and the jobs stay held."""
    resources.setup(settings)
    ecs = clients.client("ecs", settings)
    ecs.update_service(cluster="default", service="TestAppService",
                       deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 200})
    report = resources.setup(settings)
    [service] = ecs.describe_services(cluster="default", services=["TestAppService"])["services"]
    assert service["deploymentConfiguration"] == {"minimumHealthyPercent": 0, "maximumPercent": 200}
    assert "TestAppService (deployment configuration)" in [change.name for change in report.changes]


def test_setup_restores_a_log_retention_someone_changed(aws, settings):
    resources.setup(settings)
    clients.client("logs", settings).put_retention_policy(logGroupName="TestApp", retentionInDays=1)
    resources.setup(settings)
    groups = clients.client("logs", settings).describe_log_groups()["logGroups"]
    assert {group["logGroupName"]: group["retentionInDays"] for group in groups} == {
        "TestApp": 60, "TestApp_perInstance": 60}


def test_cli_setup_prints_each_resource_and_warns_without_a_task_role(aws, tmp_path):
    config = write_config(tmp_path)
    result = CliRunner().invoke(cli, ["setup", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "created queue TestAppQueue" in result.stdout
    assert "created ECS service TestAppService" in result.stdout
    assert "warning: IAM role TestApp-task-role does not exist" in result.stderr
    again = CliRunner().invoke(cli, ["setup", "--config", str(config)])
    assert again.exit_code == 0
    assert "created" not in again.stdout


def test_cli_setup_with_a_bad_config_is_one_line_and_creates_nothing(aws, tmp_path):
    config = write_config(tmp_path, MEMORY="lots")
    result = CliRunner().invoke(cli, ["setup", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == f'error: {config}: MEMORY: expected an integer >= 6, got "lots"\n'
    assert clients.client("sqs", make_settings()).list_queues().get("QueueUrls", []) == []
