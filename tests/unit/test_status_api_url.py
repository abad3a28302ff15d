from operations.deployed.status_api import url_for


def test_on_aws_the_stage_is_under_execute_api_host_and_on_the_emulator_under_its_user_request_path():
    assert url_for("abc123", "api", "/runs", "eu-west-1", None) == \
        "https://abc123.execute-api.eu-west-1.amazonaws.com/api/runs"
    assert url_for("abc123", "api", "/runs/X", "us-east-1", "http://127.0.0.1:5000/") == \
        "http://127.0.0.1:5000/restapis/abc123/api/_user_request_/runs/X"
