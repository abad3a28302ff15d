"""The AWS clients one run's monitor uses, made lazily for the run's region (the Lambda has no config.json)."""

from __future__ import annotations

from chalicelib import aws

SERVICES = ("sqs", "ec2", "ecs", "cloudwatch", "logs", "s3")


class Clients:
    """`clients.sqs`, `clients.ec2`, ...: each made on first use, then reused."""

    def __init__(self, region: str):
        self.region = region

    def __getattr__(self, service: str):
        if service not in SERVICES:
            raise AttributeError(service)
        made = aws.client(service, region=self.region)
        setattr(self, service, made)  # later lookups find the attribute and skip __getattr__
        return made
