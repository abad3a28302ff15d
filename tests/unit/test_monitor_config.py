"""`cli.py monitor-config`: the monitor's stage and both policies written from the runs' configs, and the
committed .chalice files are exactly its output for examples/config.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.model.settings import Settings
from cli import cli
from operations.deployed import monitor_policy

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "config.json"  # AWS_BUCKET demo-bucket, DS's default dead-letter queue
DS_CONFIG = REPO / "tests" / "data" / "ds_config.py"  # AWS_BUCKET your-bucket-name, dead-letter queue DeadMessages
FILES = ("config.json", "policy-dev.json", "policy-api-dev.json")


@pytest.fixture
def chalice_dir(tmp_path) -> Path:
    """A copy of the project's .chalice folder, as a user's checkout has it."""
    copied = tmp_path / ".chalice"
    shutil.copytree(REPO / ".chalice", copied, ignore=shutil.ignore_patterns("deployed", "deployments"))
    return copied


def monitor_config(*args: str):
    return CliRunner().invoke(cli, ["monitor-config", *args])


def contents(folder_or_files) -> dict[str, str]:
    files = folder_or_files.iterdir() if isinstance(folder_or_files, Path) else folder_or_files
    return {path.name: path.read_text() for path in sorted(files)}


def s3_and_queue_resources(policy: dict) -> set[str]:
    found = set()
    for statement in policy["Statement"]:
        if any(action.startswith(("s3:", "sqs:ReceiveMessage")) for action in statement["Action"]):
            resource = statement["Resource"]
            found.update([resource] if isinstance(resource, str) else resource)
    return found


def test_the_committed_chalice_files_are_the_generators_output_for_the_example_config():
    deployment = monitor_policy.deployment(REPO / ".chalice", "dev",
                                           monitor_policy.Watched.of([Settings.load(EXAMPLE)]))

    assert {path.name: text for path, text in deployment.files.items()} == {
        name: (REPO / ".chalice" / name).read_text() for name in FILES}


def test_one_config_the_stage_watches_its_bucket_and_the_policies_reach_it_alone(chalice_dir):
    before = json.loads((chalice_dir / "config.json").read_text())

    result = monitor_config(str(EXAMPLE), "--chalice-dir", str(chalice_dir))

    assert (result.exit_code, result.output) == (0, (
        f"{chalice_dir}/config.json: stage dev watches demo-bucket\n"
        f"{chalice_dir}/policy-dev.json: the monitor may reach runs in demo-bucket and the dead-letter queue(s) "
        "user_DeadMessages\n"
        f"{chalice_dir}/policy-api-dev.json: the status API may read demo-bucket and the dead-letter queue(s) "
        "user_DeadMessages\n"))
    after = json.loads((chalice_dir / "config.json").read_text())
    before["stages"]["dev"]["environment_variables"]["MONITOR_BUCKETS"] = "demo-bucket"
    assert after == before  # every other key as it was
    assert sorted(path.name for path in chalice_dir.iterdir()) == sorted(FILES)  # no temporary file left
    monitor = json.loads((chalice_dir / "policy-dev.json").read_text())
    api = json.loads((chalice_dir / "policy-api-dev.json").read_text())
    # both look at the dead-letter queue: the API to list failed jobs, the monitor to count them in the summary
    assert s3_and_queue_resources(monitor) == {"arn:aws:s3:::demo-bucket", "arn:aws:s3:::demo-bucket/monitors/*",
                                               "arn:aws:s3:::demo-bucket/runs/*",
                                               "arn:aws:s3:::demo-bucket/exportedlogs/*",
                                               "arn:aws:sqs:*:*:user_DeadMessages"}
    assert s3_and_queue_resources(api) == {"arn:aws:s3:::demo-bucket", "arn:aws:s3:::demo-bucket/monitors/*",
                                           "arn:aws:s3:::demo-bucket/runs/*", "arn:aws:sqs:*:*:user_DeadMessages"}


def test_several_configs_each_bucket_and_dead_letter_queue_once_sorted(chalice_dir, tmp_path):
    again = tmp_path / "again.json"  # a second run in the example's bucket
    again.write_text(json.dumps({**json.loads(EXAMPLE.read_text()), "APP_NAME": "Again"}))

    result = monitor_config(str(EXAMPLE), str(DS_CONFIG), "--config", str(again), "--chalice-dir", str(chalice_dir))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{chalice_dir}/config.json: stage dev watches demo-bucket, your-bucket-name",
        f"{chalice_dir}/policy-dev.json: the monitor may reach runs in demo-bucket, your-bucket-name and the "
        "dead-letter queue(s) DeadMessages, user_DeadMessages",
        f"{chalice_dir}/policy-api-dev.json: the status API may read demo-bucket, your-bucket-name and the "
        "dead-letter queue(s) DeadMessages, user_DeadMessages"]
    config = json.loads((chalice_dir / "config.json").read_text())
    assert config["stages"]["dev"]["environment_variables"]["MONITOR_BUCKETS"] == "demo-bucket,your-bucket-name"
    api = json.loads((chalice_dir / "policy-api-dev.json").read_text())
    assert {resource for resource in s3_and_queue_resources(api) if resource.startswith("arn:aws:sqs")} == {
        "arn:aws:sqs:*:*:DeadMessages", "arn:aws:sqs:*:*:user_DeadMessages"}


def test_a_stage_not_yet_there_is_made_like_dev_with_its_own_policy_files(chalice_dir):
    dev_before = contents(chalice_dir)

    result = monitor_config(str(DS_CONFIG), "--stage", "prod", "--chalice-dir", str(chalice_dir))

    assert result.exit_code == 0, result.output
    config = json.loads((chalice_dir / "config.json").read_text())
    prod, dev = config["stages"]["prod"], config["stages"]["dev"]
    assert prod["iam_policy_file"] == "policy-prod.json"
    assert prod["lambda_functions"]["api_handler"]["iam_policy_file"] == "policy-api-prod.json"
    assert prod["environment_variables"]["MONITOR_BUCKETS"] == "your-bucket-name"
    assert {key: value for key, value in prod.items() if key not in ("iam_policy_file", "lambda_functions",
                                                                     "environment_variables")} == {
        key: value for key, value in dev.items() if key not in ("iam_policy_file", "lambda_functions",
                                                                "environment_variables")}
    assert json.loads(dev_before["config.json"])["stages"]["dev"] == dev
    assert {name: text for name, text in contents(chalice_dir).items() if name != "config.json"} == {
        "policy-dev.json": dev_before["policy-dev.json"], "policy-api-dev.json": dev_before["policy-api-dev.json"],
        "policy-prod.json": (chalice_dir / "policy-prod.json").read_text(),
        "policy-api-prod.json": (chalice_dir / "policy-api-prod.json").read_text()}
    assert "your-bucket-name" in (chalice_dir / "policy-prod.json").read_text()


@pytest.mark.parametrize("case, args, expected", [
    ("no config", [], "error: monitor-config: name the config of each run the monitor watches (CONFIG [CONFIG ...])"),
    ("a config that does not exist, after a good one", [str(DS_CONFIG), "missing.json"],
     "error: missing.json: file not found"),
    ("a stage Lambda cannot name", [str(DS_CONFIG), "--stage", "dev/x"],
     "error: --stage: expected letters, digits, '-' or '_' (Chalice names the functions after it), got 'dev/x'"),
    ("a config with a bad key", [str(DS_CONFIG), "{bad}"],
     "error: {bad}: AWS_BUCKET: expected an S3 bucket name (3 to 63 lowercase letters, digits, '.', '-'), "
     'got "Not_A_Bucket"'),
])
def test_bad_input_is_one_line_and_writes_nothing(chalice_dir, tmp_path, monkeypatch, case, args, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(EXAMPLE.read_text()), "AWS_BUCKET": "Not_A_Bucket"}))
    monkeypatch.chdir(tmp_path)
    before = contents(chalice_dir)

    result = monitor_config(*[arg.replace("{bad}", str(bad)) for arg in args], "--chalice-dir", str(chalice_dir))

    assert (result.exit_code, result.output) == (2, expected.replace("{bad}", str(bad)) + "\n"), case
    assert contents(chalice_dir) == before


def test_a_chalice_folder_without_its_config_is_one_line(tmp_path):
    result = monitor_config(str(EXAMPLE), "--chalice-dir", str(tmp_path))

    assert (result.exit_code, result.output) == (2, f"error: {tmp_path}/config.json: file not found\n")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_a_policy_files_place_is_one_line_and_changes_nothing(chalice_dir):
    (chalice_dir / "policy-api-dev.json").unlink()
    (chalice_dir / "policy-api-dev.json").mkdir()
    before = contents({path for path in chalice_dir.iterdir() if path.is_file()})

    result = monitor_config(str(DS_CONFIG), "--chalice-dir", str(chalice_dir))  # another bucket than committed

    assert (result.exit_code, result.output) == (
        2, f"error: {chalice_dir}/policy-api-dev.json: expected a file, found a folder\n")
    assert contents({path for path in chalice_dir.iterdir() if path.is_file()}) == before
    assert sorted(path.name for path in chalice_dir.iterdir()) == sorted(FILES)


def test_a_stage_that_is_not_an_object_is_one_line(chalice_dir):
    config = json.loads((chalice_dir / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"] = ["MONITOR_BUCKETS"]
    (chalice_dir / "config.json").write_text(json.dumps(config))
    before = contents(chalice_dir)

    result = monitor_config(str(DS_CONFIG), "--chalice-dir", str(chalice_dir))

    assert (result.exit_code, result.output) == (
        2, f"error: {chalice_dir}/config.json: stages.dev.environment_variables: expected an object, got list\n")
    assert contents(chalice_dir) == before


def test_a_destination_bucket_apart_is_listed_under_each_output_root_and_read_nowhere(chalice_dir, tmp_path):
    """A dead-lettered job whose outputs are complete is done (chalicelib/monitor/output_rule.py): both policies may
    list each run's output root in a DESTINATION_BUCKET that is no watched bucket, and nothing more of it."""
    example = json.loads(EXAMPLE.read_text())
    paths = []
    for name, output_prefix in (("Plates", "plates/{plate}"), ("Sites", "sites/{job_id}"), ("Anywhere", "{plate}")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**example, "APP_NAME": name, "DESTINATION_BUCKET": "lab-outputs",
                                    "OUTPUT_PREFIX": output_prefix}))
        paths.append(str(path))

    one = monitor_config(paths[0], "--chalice-dir", str(chalice_dir))
    assert one.exit_code == 0, one.output
    assert one.stdout.splitlines()[1].endswith("dead-letter queue(s) user_DeadMessages; and list "
                                               "s3://lab-outputs/plates/")
    for name in ("policy-dev.json", "policy-api-dev.json"):
        [listing] = [statement for statement in json.loads((chalice_dir / name).read_text())["Statement"]
                     if "lab-outputs" in json.dumps(statement)]
        assert (listing["Action"], listing["Resource"], listing["Condition"]) == (
            ["s3:ListBucket"], ["arn:aws:s3:::lab-outputs"], {"StringLike": {"s3:prefix": ["plates/*"]}})
    # two roots; then one that starts with a job value (outputs anywhere in the bucket): the whole bucket's listing
    assert monitor_policy.Watched.of([Settings.load(path) for path in paths[:2]]).outputs == (
        ("lab-outputs", ("plates/", "sites/")),)
    everywhere = monitor_policy.monitor_policy(monitor_policy.Watched.of([Settings.load(path) for path in paths]))
    [listing] = [statement for statement in everywhere["Statement"] if "lab-outputs" in json.dumps(statement)]
    assert "Condition" not in listing and listing["Action"] == ["s3:ListBucket"]
    # the example's outputs go to its own bucket, listed whole already: nothing more
    assert monitor_policy.Watched.of([Settings.load(EXAMPLE)]).outputs == ()
