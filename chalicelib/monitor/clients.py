"""The AWS clients one run's monitor uses, made lazily for the run's region (the Lambda has no config.json)."""

from __future__ import annotations

from functools import cached_property

from chalicelib import aws


class Clients:
    def __init__(self, region: str):
        self.region = region

    def _make(self, service: str):
        return aws.client(service, region=self.region)

    @cached_property
    def sqs(self):
        return self._make("sqs")

    @cached_property
    def ec2(self):
        return self._make("ec2")

    @cached_property
    def ecs(self):
        return self._make("ecs")

    @cached_property
    def cloudwatch(self):
        return self._make("cloudwatch")

    @cached_property
    def logs(self):
        return self._make("logs")

    @cached_property
    def s3(self):
        return self._make("s3")
