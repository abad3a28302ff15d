"""Waiting for the fleet: a timeout, and fleet trouble reported rather than crashed on (fake EC2, fake clock)."""

from chalicelib.cluster import wait_for_fleet


class FakeEC2:
    """describe_spot_fleet_requests / _instances as EC2 answers them, scripted per call."""

    class exceptions:
        ClientError = Exception

    def __init__(self, states, instances=0):
        self.states = list(states)
        self.instances = instances

    def describe_spot_fleet_requests(self, SpotFleetRequestIds):
        state, activity = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"SpotFleetRequestConfigs": [{"SpotFleetRequestState": state, "ActivityStatus": activity}]}

    def get_paginator(self, name):
        fake = self

        class Pages:
            def paginate(self, **_):
                return [{"ActiveInstances": [{"InstanceId": f"i-{n}"} for n in range(fake.instances)]}]

        return Pages()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_fleet_with_no_capacity_is_reported_as_a_problem_not_an_exception():
    clock = Clock()
    status = wait_for_fleet(FakeEC2([("active", "pending_fulfillment"), ("active", "error")]), "sfr-1", 600, 15,
                            clock, clock.sleep)
    assert (status.activity, status.timed_out, clock.now) == ("error", False, 15)
    assert status.problem.startswith("the spot fleet reports an error, often no spot capacity")


def test_waiting_stops_at_the_timeout_and_says_so():
    clock = Clock()
    status = wait_for_fleet(FakeEC2([("active", "pending_fulfillment")]), "sfr-1", 40, 15, clock, clock.sleep)
    assert status.timed_out and clock.now == 40
    assert status.problem.startswith("no machine has started yet")


def test_the_first_machine_ends_the_wait():
    clock = Clock()
    status = wait_for_fleet(FakeEC2([("active", "fulfilled")], instances=1), "sfr-1", 600, 15, clock, clock.sleep)
    assert (status.instances, status.timed_out, status.problem, clock.now) == (1, False, None, 0)
