"""The run's launch template made by someone else, then deleted, while start-cluster makes it: one clear line.

save_versions creates the template when it finds none; CreateLaunchTemplate answering AlreadyExists sends it to
look the template up again, and a template deleted in between is then not there either. The race is forced with
botocore's own event hooks on moto (our code unchanged): another client creates the template just before our
CreateLaunchTemplate, and deletes it just before our second DescribeLaunchTemplates.
"""

import boto3
import pytest

from chalicelib.model import names
from chalicelib.model.errors import StartConflict
from operations.start.launch_template import LaunchChoice, save_versions

REGION = "us-east-1"
DATA = {"ImageId": "ami-12345678"}


def test_a_template_made_and_deleted_meanwhile_is_a_conflict_not_a_traceback(aws, settings):
    ec2 = boto3.client("ec2", region_name=REGION)
    other = boto3.client("ec2", region_name=REGION)
    name = names.launch_template(settings)
    looks = []

    def made_first(**_):
        other.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=DATA)

    def deleted_before_the_second_look(**_):
        looks.append(1)
        if len(looks) == 2:
            other.delete_launch_template(LaunchTemplateName=name)

    ec2.meta.events.register("before-call.ec2.CreateLaunchTemplate", made_first)
    ec2.meta.events.register("before-call.ec2.DescribeLaunchTemplates", deleted_before_the_second_look)

    with pytest.raises(StartConflict, match=f"launch template '{name}' was made and deleted by someone else"):
        save_versions(ec2, settings, [LaunchChoice(DATA, ())], [])
    assert len(looks) == 2
    assert other.describe_launch_templates()["LaunchTemplates"] == []
