"""start-cluster's reading of the task role's policy (operations/setup/job_access.py `allows`): for a folder a job
reads, an Allow counts only when it covers every key under it, a Deny whenever it may cover one."""

from __future__ import annotations

import pytest

from operations.setup import job_access, job_locations


# (a statement, whether it alone lets every key of the folder be read, whether as a Deny it refuses the folder)
@pytest.mark.parametrize("statement,allowed,denies", [
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::dcp-images/demo/*"}, True, True),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::dcp-images/*/images/*"}, True, True),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::dcp-images/demo/images/"}, False, True),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::dcp-images/demo/images/?"}, False, True),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::dcp-images/demo/images/a*"}, False, True),
    ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::dcp-images/demo/other/*"}, False, False),
    ({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::dcp-images/*"}, False, False),
    ({"Effect": "Allow", "NotAction": "s3:PutObject", "Resource": "*"}, False, True),  # not evaluated: refused
])
def test_start_clusters_evaluation_of_a_folder_grant(statement, allowed, denies):
    need = job_locations.Need(job_locations.READ, "dcp-images", "demo/images/", True, "input", "P1")
    assert job_access.allows({"Statement": [statement]}, need) is allowed
    everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    assert job_access.allows({"Statement": [everything, {**statement, "Effect": "Deny"}]}, need) is not denies
