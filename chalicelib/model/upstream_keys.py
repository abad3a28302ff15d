"""The environment variables Distributed-Something's and Distributed-CellProfiler's run.py write into the task
definition, one table per upstream, each read from one upstream commit.

A DS or DCP config.py names the keys its run.py reads; the ones run.py passes into the container are the image's
interface. Config keys in a table that this project does not read itself (DCP's WORKSPACE_BUCKET, ALWAYS_CONTINUE,
plugin switches) reach the image the same way, under the same names and conditions. A key that upstream adds after
the commit a table was read from is not in it: dsconfig.py passes it on with a warning naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variable:
    name: str  # the config key, and the environment variable's name
    from_config: bool = True  # False: run.py computes it (SQS_QUEUE_URL, from SQS_QUEUE_NAME)
    only_if_true: str | None = None  # passed only when this key's text, lowercased, is 'true'
    unless_false: str | None = None  # not passed when this key's text, lowercased, is 'false'


@dataclass(frozen=True)
class Upstream:
    short: str
    repository: str
    commit: str
    read_from: str
    variables: tuple[Variable, ...]
    # run.py's back-compatibility renames: an old config's key, and the key run.py reads its value as
    renamed: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.short}'s run.py ({self.commit[:7]})"

    def passes(self, name: str) -> bool:
        return any(variable.name == name for variable in self.variables)

    def variable(self, name: str) -> Variable | None:
        return next((variable for variable in self.variables if variable.name == name), None)


# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, which both run.py also write when the profile has no role_arn, are left
# out on purpose: here the task role gives the container its credentials.
DS = Upstream(
    "DS", "DistributedScience/Distributed-Something", "d1d6e62edb0c83e5d0a047e8569d455ea2cebacd",
    "run.py lines 28-37 (TASK_DEFINITION) and 107-152 (generate_task_definition)",
    (Variable("AWS_REGION"), Variable("APP_NAME"), Variable("SQS_QUEUE_URL", from_config=False),
     Variable("AWS_BUCKET"), Variable("DOCKER_CORES"), Variable("LOG_GROUP_NAME"), Variable("CHECK_IF_DONE_BOOL"),
     Variable("EXPECTED_NUMBER_FILES"), Variable("ECS_CLUSTER"), Variable("SECONDS_TO_START"),
     Variable("MIN_FILE_SIZE_BYTES"), Variable("NECESSARY_STRING")),
)

DCP = Upstream(
    "DCP", "DistributedScience/Distributed-CellProfiler", "17388b33e6e7324b9f014b624450585926ea944c",
    "run.py lines 13-32 (back compatibility), 42-51 (TASK_DEFINITION) and 120-164 (generate_task_definition)",
    (*DS.variables,
     Variable("USE_PLUGINS"), Variable("DOWNLOAD_FILES"), Variable("ALWAYS_CONTINUE"),
     Variable("SOURCE_BUCKET", unless_false="SOURCE_BUCKET"),
     Variable("DESTINATION_BUCKET", unless_false="SOURCE_BUCKET"),
     Variable("WORKSPACE_BUCKET", unless_false="WORKSPACE_BUCKET"),
     Variable("UPLOAD_FLAGS", unless_false="UPLOAD_FLAGS"),
     Variable("UPDATE_PLUGINS", only_if_true="USE_PLUGINS"), Variable("PLUGINS_COMMIT", only_if_true="USE_PLUGINS"),
     Variable("INSTALL_REQUIREMENTS", only_if_true="USE_PLUGINS"),
     Variable("REQUIREMENTS", only_if_true="USE_PLUGINS")),
    renamed={"REQUIREMENTS_FILE": "REQUIREMENTS"},
)

UPSTREAMS = (DS, DCP)


def only_of(upstream: Upstream) -> set[str]:
    """The config keys that upstream's run.py passes and no other upstream's does: a config.py naming one is
    that upstream's."""
    others = {variable.name for other in UPSTREAMS if other is not upstream for variable in other.variables}
    return {variable.name for variable in upstream.variables if variable.from_config} - others | {
        old for old, new in upstream.renamed.items() if new not in others}


def passed_by(name: str) -> list[Upstream]:
    """The upstreams whose run.py passes this config key into the task definition."""
    return [upstream for upstream in UPSTREAMS if upstream.passes(name)]


def config_keys() -> set[str]:
    """Every config key some upstream's run.py passes into the task definition."""
    return {variable.name for upstream in UPSTREAMS for variable in upstream.variables if variable.from_config}


def computed_variables() -> set[str]:
    """The variables run.py computes rather than copies from config.py (SQS_QUEUE_URL)."""
    return {variable.name for upstream in UPSTREAMS for variable in upstream.variables if not variable.from_config}


def renamed_keys() -> dict[str, str]:
    return {old: new for upstream in UPSTREAMS for old, new in upstream.renamed.items()}


def is_passed(variable: Variable, values: dict[str, object]) -> bool:
    """Whether run.py passes the variable, given the file's values (run.py compares their text, lowercased). A
    gating key absent from the file lets nothing through: DCP's run.py defaults SOURCE_BUCKET, WORKSPACE_BUCKET and
    UPLOAD_FLAGS to 'False', and without USE_PLUGINS it stops."""
    if variable.only_if_true is not None:
        return str(values.get(variable.only_if_true, "False")).lower() == "true"
    if variable.unless_false is not None:
        return str(values.get(variable.unless_false, "False")).lower() != "false"
    return True
