"""Waiting for the fleet: a timeout, and fleet trouble reported rather than crashed on (fake EC2, fake clock)."""

from operations.start.cluster import wait_for_fleet


class FakeEC2:
    """describe_fleets / describe_fleet_instances as EC2 answers them, scripted per call."""

    class exceptions:
        ClientError = Exception

    def __init__(self, states, instances=0):
        self.states = list(states)
        self.instances = instances

    def describe_fleets(self, FleetIds):
        state, activity = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"Fleets": [{"FleetId": FleetIds[0], "FleetState": state, "ActivityStatus": activity}]}

    def describe_fleet_instances(self, FleetId):
        return {"ActiveInstances": [{"InstanceId": f"i-{n}"} for n in range(self.instances)], "FleetId": FleetId}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_fleet_with_no_capacity_is_reported_as_a_problem_not_an_exception():
    clock = Clock()
    status = wait_for_fleet(FakeEC2([("active", "pending_fulfillment"), ("active", "error")]), "fleet-1", 600, 15,
                            clock, clock.sleep)
    assert (status.activity, status.timed_out, clock.now) == ("error", False, 15)
    assert status.problem.startswith("the fleet reports an error")


def test_waiting_stops_at_the_timeout_and_says_so():
    clock = Clock()
    status = wait_for_fleet(FakeEC2([("active", "pending_fulfillment")]), "fleet-1", 40, 15, clock, clock.sleep)
    assert status.timed_out and clock.now == 40
    assert status.problem.startswith("no machine has started yet")


def test_the_first_machine_ends_the_wait():
    clock = Clock()
    status = wait_for_fleet(FakeEC2([("active", "fulfilled")], instances=1), "fleet-1", 600, 15, clock, clock.sleep)
    assert (status.instances, status.timed_out, status.problem, clock.now) == (1, False, None, 0)
