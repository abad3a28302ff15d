"""Job files (DS format) -> validated `Job`s, and SQS messages -> `Job`s.

A job file is a JSON object: top-level keys are shared by every job, `groups`
is the list of jobs, and every top-level key containing `_comment` is dropped.
Each group becomes one message, DS's shape: the shared keys plus
`"group": {...}`; or, for DCP's image (JOB_MESSAGE_FORMAT "DCP"), DCP's shape: its five top-level keys and the
group's `Metadata` (DCP's run.py submitJob, 17388b3 lines 547-571), which DCP's worker reads.

Everything is built and checked before anything is sent: every message, every
job id, every template of every job, and the output prefixes against each other
(no job's prefix may hold another's). One bad group fails the whole file.
`JobFile` does so without holding the jobs: it validates the file in one reading
(two when a top-level key follows the groups) and reads it again, a job at a
time, for whoever iterates it (submit's senders), refusing a file changed since.

The worker reads messages back through `job_from_message`, the same rules, so a
message that would not have come from a valid job file is never run.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.model.errors import JobFileError
from chalicelib.model.jsonfile import NotAnObject, NotStrictJSON, StreamedObject, loads_strict, open_file
from chalicelib.model.names import RUN_ATTRIBUTE_BYTES
from chalicelib.model.printable import CONTROL_CHARACTERS
from chalicelib.model.settings import Settings
from chalicelib.model.templates import MissingPlaceholder, Template, TemplateError, value_text

# SQS's long-standing message size limit (AWS raised the default to 1 MiB in
# 2025, but queues created before keep 256 KiB and moto enforces 256 KiB).
SQS_MESSAGE_BYTES = 262_144
MAX_MESSAGE_BYTES = SQS_MESSAGE_BYTES - RUN_ATTRIBUTE_BYTES  # a body's limit: the run's attribute counts too
MAX_JOB_ID_LENGTH = 200
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
# Placeholders whose values exist only on the worker. Every other placeholder
# is checked at submit, so a typo in COMMAND fails there, not on a machine an
# hour later.
_RUNTIME_STANDINS = frozenset({"output_dir", "input_dir"})


@dataclass(frozen=True)
class Job:
    """One job: its id, its SQS message body, and where its outputs go."""

    job_id: str
    body: str
    body_bytes: int  # len(body) in UTF-8, measured once here: submit packs batches by it without encoding again
    values: Mapping[str, Any]  # shared keys overlaid with the group's keys
    output_prefix: str
    input_prefix: str | None

    def command(self, settings: Settings, output_dir: str, input_dir: str) -> list[str]:
        """COMMAND with this job's values: an argument list, never a shell string."""
        context = _context(self.values, self.job_id, settings_values(settings))
        context.update(output_dir=output_dir, input_dir=input_dir)
        # COMMAND is unset only in DS image mode, where the image's own worker runs the jobs, never this
        return [Template(item).render(context) for item in settings.COMMAND or ()]


class NotAJob(ValueError):
    """A queue message that is not one of our jobs."""


def load_job_file(path: str | Path, settings: Settings) -> list[Job]:
    """Every job of a job file, in a list (local mode's files are small); submit reads it as a JobFile."""
    return list(JobFile(path, settings))


def parse_job_document(document: Any, settings: Settings, source: str = "jobs.json") -> list[Job]:
    if not isinstance(document, dict):
        raise JobFileError(f"{source}: expected a JSON object with a 'groups' list, got {type(document).__name__}")
    shared = _shared(document, source)
    build = _Builder(shared, settings, source)
    jobs = [build(index, group) for index, group in enumerate(document["groups"])]
    build.check_whole_file(lambda: enumerate(jobs))
    return jobs


def _shared(members: dict[str, Any], source: str) -> dict[str, Any]:
    """The top-level keys every message carries; refuses a file without groups. A streamed reading passes
    range(count) in the place of the list it did not keep."""
    shared = {key: value for key, value in members.items() if "_comment" not in key and key != "groups"}
    if "groups" not in members:
        raise JobFileError(f"{source}: missing key 'groups' (the list of jobs)")
    groups = members["groups"]
    if not isinstance(groups, list | range):
        raise JobFileError(f"{source}: groups: expected a list of objects, got {type(groups).__name__}")
    if not groups:
        raise JobFileError(f"{source}: groups: expected at least one job, got an empty list")
    if "group" in shared:
        raise JobFileError(f"{source}: group: reserved top-level key (each message carries its group under it)")
    return shared


class _Builder:
    """Builds one file's jobs one at a time, keeping only what the checks across jobs need: a 64-bit hash of each
    job id and each body (8 bytes each), and each OUTPUT_PREFIX in a compact sort key (about 72 bytes for a prefix
    of 18 characters). Linear still, but a million jobs keep about 90 MB here (and 40 MB more while their id hashes
    are sorted), where their `Job`s in a list took 1.2 GB (bench/bench_submit_memory.py)."""

    def __init__(self, shared: dict[str, Any], settings: Settings, source: str, record: bool = True):
        self.shared, self.settings, self.source, self.record = shared, settings, source, record
        self.templates = _Templates(settings)
        self.shared_json = _json_text(shared, source)[1:-1]
        self.ids = array("q")
        self.bodies = array("q")  # hash(body): a later reading sends only what was validated (JobFile)
        self.prefixes: list[bytes] = []

    def __call__(self, index: int, group: Any) -> Job:
        job = _build_job(self.shared, self.shared_json, group, self.settings, self.templates,
                         f"{self.source}: groups[{index}]")
        if not self.record:
            return job
        self.ids.append(hash(job.job_id))
        self.bodies.append(hash(job.body))
        self.prefixes.append(_prefix_key(job.output_prefix, index))
        return job

    def check_whole_file(self, again: Callable[[], Iterable[tuple[int, Job]]]) -> None:
        """Job ids unique, no output prefix within another's. `again` reads the jobs again, needed only when two
        ids' hashes are equal (to name the groups, or to find that the ids differ)."""
        ids = sorted(self.ids)
        if any(first == second for first, second in itertools.pairwise(ids)):
            _refuse_duplicate_ids(again(), self.source)
        del ids
        _refuse_overlapping_outputs(self.prefixes, self.settings, self.source)


def _refuse_duplicate_ids(jobs: Iterable[tuple[int, Job]], source: str) -> None:
    seen: dict[str, int] = {}
    for index, job in jobs:
        first = seen.setdefault(job.job_id, index)
        if first != index:
            raise JobFileError(f"{source}: groups[{index}]: job id {job.job_id!r} is also the id of groups[{first}]; "
                               "job ids must be unique (set 'job_id' in the group)")


class JobFile:
    """A job file validated whole, whose jobs are read from the file again each time it is iterated: neither
    reading holds more than one group (and the few bytes a job of `_Builder`).

    Reading 1 refuses what is not strict JSON and builds and checks every job with the top-level keys before the
    groups (DS's and DCP's files have them all there); a group refused is reported only once the whole file is
    known to be JSON, as when it was read whole. When a top-level key comes after the groups, reading 2 builds and
    checks every job again with it, and its digest of every byte and the file's identity must be reading 1's.
    Then every job is known good and nothing was sent. Each later reading (`iter`) is of the same file or
    refused: before yielding anything its device, inode, size and times must be those reading 1 saw (a write or
    a replacement changes them: jsonfile.file_identity); and each job's body must hash as at validation, so a
    write racing the reading itself stops it at the first job that differs: what is sent is only ever what was
    validated."""

    def __init__(self, path: str | Path, settings: Settings):
        self.path, self.settings, self.source = path, settings, str(path)
        members: dict[str, Any] = {}
        build: _Builder | None = None  # the groups built as they are read, with the top-level keys before them
        late = False  # a top-level key after the groups: they must be built again, with it
        refused: JobFileError | None = None  # the first group refused, raised once the file is known to be JSON
        with self._reading() as stream:
            for key, index, value in stream.members():
                if index is None:
                    members[key] = value
                    late = late or (build is not None and "_comment" not in key)
                    continue
                members[key] = range(index + 1)
                try:
                    if build is None:
                        build = _Builder(_shared({**members, "groups": [None]}, self.source), settings, self.source)
                    if refused is None:
                        build(index, value)
                except JobFileError as error:
                    refused = refused or error
            identity, digest = stream.identity, stream.digest
        self.shared = _shared(members, self.source)
        self.count = len(members["groups"])
        self.identity = identity
        if late or build is None:
            build = self._validate(identity, digest)
        elif refused is not None:
            raise refused
        build.check_whole_file(lambda: self._again())
        self._bodies = build.bodies

    def _validate(self, identity: tuple[int, ...], digest: bytes) -> _Builder:
        """Reading 2, when the groups came before some of the top-level keys: every job built with them all."""
        build = _Builder(self.shared, self.settings, self.source)
        with self._reading() as stream:
            for _ in self._jobs(stream, build):
                pass
            same = stream.identity == identity and stream.digest == digest
        if not same:
            raise JobFileError(f"{self.source}: changed while it was being validated; nothing was sent; submit it "
                               "again once it is written")
        return build

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Job]:
        with self._reading() as stream:
            if stream.identity != self.identity:
                raise JobFileError(f"{self.source}: changed since it was validated; nothing was sent from it; submit "
                                   "it again")
            count = 0
            for index, job in self._jobs(stream, None):
                if index >= self.count or hash(job.body) != self._bodies[index]:
                    break
                count += 1
                yield job
            if count != self.count:
                raise JobFileError(f"{self.source}: groups[{count}]: changed since the file was validated; no job from "
                                   "it on was sent")

    def _again(self) -> Iterator[tuple[int, Job]]:
        with self._reading() as stream:
            yield from self._jobs(stream, None)

    def _jobs(self, stream: StreamedObject, build: _Builder | None) -> Iterator[tuple[int, Job]]:
        build = build or _Builder(self.shared, self.settings, self.source, record=False)
        for key, index, group in stream.members():
            if index is not None and key == "groups":
                yield index, build(index, group)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[StreamedObject]:
        with open_file(self.path, JobFileError) as handle:
            try:
                yield StreamedObject(handle, "groups")
            except UnicodeDecodeError:
                raise JobFileError(f"{self.source}: expected UTF-8 JSON text") from None
            except json.JSONDecodeError as problem:
                raise JobFileError(f"{self.source}: invalid JSON at line {problem.lineno} column {problem.colno}: "
                                   f"{problem.msg}") from None
            except NotStrictJSON as problem:
                raise JobFileError(f"{self.source}: {problem}") from None
            except NotAnObject as problem:
                raise JobFileError(f"{self.source}: expected a JSON object with a 'groups' list, got "
                                   f"{problem.found}") from None
            except RecursionError:
                raise JobFileError(f"{self.source}: JSON nested too deeply") from None


def job_from_message(body: str, settings: Settings) -> Job:
    """The job a queue message carries; raises NotAJob for anything else."""
    document = _message_document(body)
    shared = {key: value for key, value in document.items() if key != "group"}
    try:
        return _build_job(shared, json.dumps(shared)[1:-1], document["group"], settings, _Templates(settings),
                          "message", body=body)
    except JobFileError as error:
        raise NotAJob(str(error)) from None


def job_id_of_message(body: str) -> str:
    """The job id a queue message carries, by the rule `job_from_message` uses (the group's `job_id`, else DS's
    rule on its values), for a reader without the run's settings (the monitor Lambda): nothing else of the job is
    checked, so this says whose a message is, never whether it may run. A DCP message's group is its Metadata.
    Raises NotAJob."""
    group = _message_group(body)
    try:
        return _job_id(group, "message")
    except JobFileError as error:
        raise NotAJob(str(error)) from None


def output_prefix_of_message(body: str, output_prefix: str, run_values: Mapping[str, Any]) -> str:
    """Where the job a DS-shaped message carries puts its outputs: the OUTPUT_PREFIX template rendered as
    `job_from_message` renders it, for a reader that has the template and `run_values` (settings_values: APP_NAME,
    AWS_BUCKET) but not the run's settings (the monitor Lambda). Raises NotAJob for anything else, a DCP message too
    (DCP's worker makes its own output path from its fields)."""
    document = _message_document(body)
    group = document["group"]
    try:
        job_id = _job_id(group, "message")
        values = {**{key: value for key, value in document.items() if key != "group"}, **group}
        return _prefix(Template(output_prefix).render(_context(values, job_id, run_values)), "message",
                       "OUTPUT_PREFIX")
    except (JobFileError, MissingPlaceholder, TemplateError) as error:
        raise NotAJob(str(error)) from None


def _message_group(body: str) -> dict[str, Any]:
    """The group a message of either shape carries: DS's `group`, or the group DCP's run.py made `Metadata` of."""
    try:
        group: dict[str, Any] = _message_document(body)["group"]
        return group
    except NotAJob:
        document = _parsed(body)
        metadata = document.get("Metadata") if isinstance(document, dict) else None
        if isinstance(metadata, str):
            return {"Metadata": metadata}
        if isinstance(metadata, dict):
            return metadata
        raise


def _parsed(body: str) -> Any:
    try:
        return loads_strict(body)  # what a job file may not hold, a message may not either
    except NotStrictJSON as error:
        raise NotAJob(f"message body is not JSON: {error}") from None
    except (ValueError, RecursionError):
        raise NotAJob("message body is not JSON") from None


def _message_document(body: str) -> dict[str, Any]:
    document = _parsed(body)
    if not isinstance(document, dict) or not isinstance(document.get("group"), dict):
        raise NotAJob("message is not a JSON object with a 'group' object")
    return document


class _Templates:
    """The settings' templates, parsed once per file rather than once per job."""

    def __init__(self, settings: Settings):
        self.command_fields = frozenset(field for item in settings.COMMAND or () for field in Template(item).fields)
        self.output_prefix = Template(settings.OUTPUT_PREFIX)
        self.input_prefix = Template(settings.INPUT_PREFIX) if settings.INPUT_PREFIX else None
        # The prefixes' placeholders that take a job's values (not the run's APP_NAME or AWS_BUCKET).
        run_wide = settings_values(settings)
        self.output_job_fields = tuple(f for f in self.output_prefix.fields if f not in run_wide)
        self.input_job_fields = (tuple(f for f in self.input_prefix.fields if f not in run_wide)
                                 if self.input_prefix else ())


def _build_job(shared: dict[str, Any], shared_json: str, group: Any, settings: Settings, templates: _Templates,
               where: str, body: str | None = None) -> Job:
    if not isinstance(group, dict):
        raise JobFileError(f"{where}: expected an object of job values, got {type(group).__name__}")
    job_id = _job_id(group, where)
    values = {**shared, **group}
    context = _context(values, job_id, settings_values(settings))
    try:
        output_prefix = _prefix(templates.output_prefix.render(context), where, "OUTPUT_PREFIX")
        _refuse_control_characters(output_prefix, templates.output_job_fields, context, group, where, "OUTPUT_PREFIX")
        _refuse_empty_values(templates.output_prefix, templates.output_job_fields, context, output_prefix, where,
                             "OUTPUT_PREFIX")
        input_prefix = None
        if templates.input_prefix:
            input_prefix = _prefix(templates.input_prefix.render(context), where, "INPUT_PREFIX")
            _refuse_control_characters(input_prefix, templates.input_job_fields, context, group, where,
                                       "INPUT_PREFIX")
            _refuse_empty_values(templates.input_prefix, templates.input_job_fields, context, input_prefix, where,
                                 "INPUT_PREFIX")
        # COMMAND is rendered on the worker; here it is enough that every placeholder has a value.
        missing = templates.command_fields.difference(context, _RUNTIME_STANDINS)
        if missing:
            raise MissingPlaceholder(min(missing))
    except MissingPlaceholder as missing:
        used_in = _where_used(missing.name, settings)
        raise JobFileError(f"{where}: missing key '{missing.name}' used as {{{missing.name}}} in {used_in}; "
                           "add it to the group or to the top level") from None
    if body is None and settings.ds_image_mode and settings.JOB_MESSAGE_FORMAT == "DCP":
        body = _json_text(dcp_message(shared, group, where), where)
    elif body is None:
        group_json = _json_text(group, where)
        body = "{" + shared_json + (", " if shared_json else "") + '"group": ' + group_json + "}"
    if "\\u0000" in body:  # json.dumps writes NUL so, which makes the common case one substring search
        _refuse_nul_in_command(templates.command_fields, context, group, where)
    size = len(body.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES:
        raise JobFileError(f"{where}: message is {size} bytes, over the limit of {MAX_MESSAGE_BYTES} (SQS's "
                           f"{SQS_MESSAGE_BYTES} less {RUN_ATTRIBUTE_BYTES} for the run's message attribute); "
                           "keep large data in S3 and pass its key")
    return Job(job_id=job_id, body=body, body_bytes=size, values=values, output_prefix=output_prefix,
               input_prefix=input_prefix)


# The top-level keys of a DCP job file its run.py puts in every message (a missing one is its KeyError), and the one
# it fills in when missing ("backwards compatibility for 1.0.0").
DCP_MESSAGE_KEYS = ("pipeline", "output", "input", "data_file")
DCP_DEFAULTS = {"output_structure": ""}


def dcp_message(shared: dict[str, Any], group: dict[str, Any], where: str) -> dict[str, Any]:
    """The message DCP's run.py submits for one group: its `Metadata` (the group's own when it has one, else the
    whole group, as `cellprofiler --print-groups` writes them) and the job file's five keys, nothing else."""
    missing = [key for key in DCP_MESSAGE_KEYS if key not in shared]
    if missing:
        raise JobFileError(f"{where.split(':')[0]}: missing key '{missing[0]}' at the top level (DCP's run.py puts "
                           f"{', '.join(DCP_MESSAGE_KEYS)} and output_structure in every message; "
                           "JOB_MESSAGE_FORMAT is DCP)")
    extra = sorted(set(group) - {"Metadata"}) if "Metadata" in group else []
    if extra:  # DCP's run.py would drop them, and a job_id the monitor counts by with them
        raise JobFileError(f"{where}: expected only 'Metadata' in a group (DCP's messages carry nothing else of it; "
                           f"JOB_MESSAGE_FORMAT is DCP), got also {extra[0]!r}")
    return {"Metadata": group.get("Metadata", group),
            **{key: shared[key] for key in DCP_MESSAGE_KEYS},
            "output_structure": shared.get("output_structure", DCP_DEFAULTS["output_structure"])}


def _json_text(value: Any, where: str) -> str:
    """A document read from a file cannot hold these (chalicelib/model/jsonfile.py); one built in Python can, and
    json.dumps would write NaN or Infinity, which no other JSON reader takes."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise JobFileError(f"{where}: expected values JSON can hold, got NaN, Infinity or an integer of "
                           "thousands of digits") from None


def settings_values(settings: Settings) -> dict[str, Any]:
    """The placeholders every job of a run renders the same way."""
    return {"APP_NAME": settings.APP_NAME, "AWS_BUCKET": settings.AWS_BUCKET}


def output_root(settings: Settings) -> str:
    """The fixed start of every job's output prefix (the task role may write only under it); '' when
    OUTPUT_PREFIX starts with a job value."""
    return Template(settings.OUTPUT_PREFIX).fixed_prefix(settings_values(settings))


def input_root(settings: Settings) -> str | None:
    """The fixed start of every job's input prefix; None without INPUT_PREFIX."""
    return Template(settings.INPUT_PREFIX).fixed_prefix(settings_values(settings)) if settings.INPUT_PREFIX else None


def _context(values: Mapping[str, Any], job_id: str, run_values: Mapping[str, Any]) -> dict[str, Any]:
    """What a job's templates render with: its values, its id, and the run-wide values (settings_values)."""
    return {**values, "job_id": job_id, **run_values}


def _where_used(name: str, settings: Settings) -> str:
    for key in ("COMMAND", "OUTPUT_PREFIX", "INPUT_PREFIX"):
        value = getattr(settings, key)
        texts = value if isinstance(value, tuple) else (value or "",)
        if any(name in Template(text).fields for text in texts):
            return key
    return "a template"


def _job_id(group: dict[str, Any], where: str) -> str:
    if "job_id" in group:
        explicit = group["job_id"]
        if not isinstance(explicit, str) or not _SAFE_ID.match(explicit) or ".." in explicit or explicit == ".":
            raise JobFileError(f"{where}: job_id: expected 1 to {MAX_JOB_ID_LENGTH} letters, digits, '.', '-' or "
                               f"'_' (no '..'), got {json.dumps(explicit)}")
        return explicit
    return derive_job_id(group[key] for key in sorted(group)) or _empty_id(where)


def derive_job_id(values: Iterable[Any]) -> str:
    """DS's rule (values joined by '-'), made safe for log stream names and S3 keys."""
    raw = "-".join(value if isinstance(value, str) else json.dumps(value, sort_keys=True) for value in values)
    safe = _DOTS.sub("_", _UNSAFE_ID_CHARS.sub("_", raw)).strip("_") or ""
    if safe in ("", ".", "-"):
        return ""
    if len(safe) > MAX_JOB_ID_LENGTH:
        digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:10]
        safe = safe[: MAX_JOB_ID_LENGTH - 11] + "-" + digest
    return safe


def _empty_id(where: str) -> str:
    raise JobFileError(f"{where}: cannot make a job id from this group's values; add a 'job_id'")


def _prefix(rendered: str, where: str, key: str) -> str:
    prefix = rendered.strip("/") if not rendered.startswith("/") else rendered
    parts = prefix.split("/")
    if rendered.startswith("/") or not prefix or any(part in ("", ".", "..") for part in parts):
        raise JobFileError(f"{where}: {key} renders to {rendered!r}; expected a relative S3 prefix "
                           "without empty, '.' or '..' parts")
    return prefix


def _refuse_control_characters(prefix: str, fields: tuple[str, ...], context: Mapping[str, Any],
                               group: dict[str, Any], where: str, key: str) -> None:
    """A prefix becomes S3 keys: AWS lists control characters among those to avoid in keys (S3's XML listings
    cannot carry most of them), and a key holding ESC or a bidi override shows otherwise than it is wherever it
    is printed. Names the job value that brought it."""
    if not CONTROL_CHARACTERS.search(prefix):
        return
    for field in fields:
        text = value_text(context[field])
        if CONTROL_CHARACTERS.search(text):
            raise JobFileError(f"{_place(field, group, where)}: expected no control characters (it is part of "
                               f"{key}, an S3 key), got {_shown(text)}")
    raise JobFileError(f"{where}: {key} renders to {json.dumps(prefix)}; expected no control characters in an S3 "
                       "prefix")


def _refuse_nul_in_command(fields: frozenset[str], context: Mapping[str, Any], group: dict[str, Any],
                           where: str) -> None:
    """A program's arguments cannot hold NUL (execve ends each at the first): the worker could not start it."""
    for field in sorted(fields.difference(_RUNTIME_STANDINS)):
        text = value_text(context[field])
        if "\x00" in text:
            raise JobFileError(f"{_place(field, group, where)}: expected no NUL character (it is an argument of "
                               f"COMMAND, which a program's arguments cannot hold), got {_shown(text)}")


def _place(field: str, group: dict[str, Any], where: str) -> str:
    return f"{where}.{field}" if field in group else f"{where}: {field} (a top-level value)"


def _shown(text: str) -> str:
    """A value in an error message: JSON's escapes show every control character, and it is cut short."""
    return json.dumps(text if len(text) <= 40 else text[:37] + "...")


def _refuse_empty_values(template: Template, fields: tuple[str, ...], context: Mapping[str, Any], prefix: str,
                         where: str, key: str) -> None:
    """A job value that renders empty makes the job's prefix the parent of other jobs' ('out/{plate}' with plate ''
    is 'out'): CHECK_IF_DONE would count their outputs as its own and skip it unrun, and its outputs (or the
    inputs it downloads) would mix with theirs."""
    for field in fields:
        if value_text(context[field]).strip("/"):
            continue
        # Only at error time: whether a real value would have put this job's prefix below the empty one's.
        filled = template.render({**context, field: "x"}).strip("/")
        if filled.startswith(prefix + "/"):
            raise JobFileError(f"{where}: {key}: {{{field}}} is empty, so the prefix would be {prefix!r}, the "
                               f"parent of other jobs' prefixes; give {field!r} a value")
        raise JobFileError(f"{where}: {key}: {{{field}}} is empty, so the prefix would be {prefix!r}; "
                           f"give {field!r} a value")


def _prefix_key(prefix: str, index: int) -> bytes:
    """An output prefix as `_refuse_overlapping_outputs` sorts it: prefix + '/' in UTF-8 (whose byte order is the
    text's code point order), NUL (no prefix holds a control character, and NUL sorts first, so a tie goes to the
    index and 'out/' still sorts before 'out/a/'), the group's index in 5 bytes big-endian."""
    return (prefix + "/").encode() + b"\0" + index.to_bytes(5, "big")


def _prefix_of(key: bytes) -> tuple[str, int]:
    return key[:-7].decode(), int.from_bytes(key[-5:], "big")


def _refuse_overlapping_outputs(keys: list[bytes], settings: Settings, source: str) -> None:
    """No job's OUTPUT_PREFIX may be the parent of another's (its outputs would mix with the other's, and
    CHECK_IF_DONE would count the other's as its own); with CHECK_IF_DONE_BOOL no two may be equal either.
    `keys` (_prefix_key) are sorted in place.

    One sort, then neighbours only. Sorted by prefix + '/', the keys starting with 'out/' are contiguous and
    'out/' is their least, so a parent comes right before its first descendant (sorting the bare prefixes
    would put 'out-b' between 'out' and 'out/a')."""
    keys.sort()
    for first_key, second_key in itertools.pairwise(keys):
        (parent, first), (other, second) = _prefix_of(first_key), _prefix_of(second_key)
        if other.startswith(parent + "/"):
            raise JobFileError(f"{source}: groups[{first}]: OUTPUT_PREFIX renders to {parent!r}, the parent of "
                               f"groups[{second}]'s {other!r}, so one job's outputs would land among the other's; "
                               "end OUTPUT_PREFIX with a value of each job's own, such as {job_id}")
        if parent == other and settings.CHECK_IF_DONE_BOOL:
            raise JobFileError(f"{source}: groups[{second}]: OUTPUT_PREFIX renders to {other!r}, as it does for "
                               f"groups[{first}]; with CHECK_IF_DONE_BOOL on, one job's outputs would make the other "
                               "count as done; give each job its own prefix, such as with {job_id}")
