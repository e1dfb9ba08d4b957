"""Loading ao's config file: ``ao.config.yaml`` (or a reference ``agent-orchestrator.yaml``).

The file is found from the current directory upwards, or named by ``AO_CONFIG`` (``discovery``).
Loading is strict and complete: every problem in the file is collected and reported at once, each
with file, line and key path (``ao.config.yaml:12: projects.web.agent: unknown agent plugin ...``).
Loading reads the file and the filesystem only; it never touches the database. Reading here
refuses what YAML should not carry (anchors, aliases, deep nesting, huge files) and keeps the
line of every key; the checks are in ``validation``.
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sessions.core.config.problems import ConfigError, ConfigProblem, problem_error
from sessions.core.config.schema import MAX_CONFIG_BYTES, MAX_NESTING, AoConfig, describe_value, dotted_path
from sessions.core.config.validation import ProblemCollector, check_keys, is_reference_file, resolve_config


# --- reading and parsing ----------------------------------------------------------------------------
class _Rejected(yaml.YAMLError):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.problem_mark = mark
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (no YAML bombs) and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Rejected(
                event.start_mark,
                f"YAML aliases are not allowed (*{event.anchor}); write the value out in full",
            )
        if getattr(event, "anchor", None):
            raise _Rejected(
                event.start_mark,
                f"YAML anchors are not allowed (&{event.anchor}); write the value out in full",
            )
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _Rejected(event.start_mark, f"nested more than {MAX_NESTING} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_bytes(path: Path, file: str) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise problem_error(file, "file not found") from None
    except (OSError, ValueError) as exc:
        raise problem_error(file, f"cannot read the file: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise problem_error(file, "not a regular file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise problem_error(file, f"file is {info.st_size} bytes; the limit is {MAX_CONFIG_BYTES} (1 MiB)")
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise problem_error(file, f"cannot read the file: {exc}") from None


def _decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_CONFIG_BYTES:
        raise problem_error(file, f"file is larger than the limit of {MAX_CONFIG_BYTES} bytes (1 MiB)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise problem_error(
            file,
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); is this a binary file?",
            line=line,
        ) from None


def _parse(text: str, file: str) -> tuple[Any, dict[tuple, int], list[ConfigProblem]]:
    """YAML text -> (data, {key path: line}, problems such as duplicate keys)."""
    try:
        loader = _Loader(text)  # the reader rejects unprintable characters already here
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}, []
            lines: dict[tuple, int] = {}
            problems: list[ConfigProblem] = []
            _walk_nodes(node, (), lines, problems, file)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except _Rejected as exc:
        raise problem_error(file, exc.message, line=exc.problem_mark.line + 1) from None
    except yaml.MarkedYAMLError as exc:
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{message} ({exc.context})"
        mark = exc.problem_mark or exc.context_mark
        raise problem_error(file, f"invalid YAML: {message}", line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise problem_error(
            file, f"not a YAML text file: unacceptable character #x{exc.character:04x}", line=line
        ) from None
    except yaml.YAMLError as exc:
        raise problem_error(file, f"invalid YAML: {exc}") from None
    return data, lines, problems


def _walk_nodes(node: Any, path: tuple, lines: dict, problems: list, file: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(
                    ConfigProblem(file, line, dotted_path(path), "merge keys (<<) are not supported")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(ConfigProblem(file, line, dotted_path(path), "keys must be plain strings"))
                continue
            identity = (key_node.tag, key_node.value)
            child = (*path, str(key_node.value))
            if identity in seen:
                problems.append(
                    ConfigProblem(
                        file,
                        line,
                        dotted_path(child),
                        f"duplicate key {key_node.value!r} (first defined at line {seen[identity]})",
                    )
                )
                continue
            seen[identity] = line
            lines[child] = line
            _walk_nodes(value_node, child, lines, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _walk_nodes(item, child, lines, problems, file)


# --- public API ------------------------------------------------------------------------------------
def config_load(path: Path | str) -> AoConfig:
    """Read, parse and validate a config file; raise ConfigError listing every problem.

    The result is the effective config: project paths resolved, session prefixes and plugins
    filled in from defaults, plugin settings validated by their plugins. Never touches the database.
    ``sha256`` is the digest of the bytes read (what ``ao start`` compares to decide whether the
    file changed since it was last applied).
    """
    path = Path(path)
    file = str(path)
    raw = _read_bytes(path, file)
    effective = _load(raw, file, path.resolve().parent, reference=is_reference_file(path))
    effective._source = path.resolve()
    return effective


def config_load_text(raw: bytes | str, *, name: str) -> AoConfig:
    """Validate config text that is not a file on the server (an upload in the admin), exactly as
    ``config_load`` does, except that a relative project ``path`` is a problem (there is no file
    directory to resolve it from). ``name`` is shown in problems; ``source`` stays None."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return _load(raw, name, None, reference=is_reference_file(Path(name)))


def _load(raw: bytes, file: str, base_dir: Path | None, *, reference: bool) -> AoConfig:
    text = _decode(raw, file)
    data, lines, parse_problems = _parse(text, file)
    out = ProblemCollector(file, lines)
    out.problems.extend(parse_problems)
    if data is None:
        raise problem_error(file, "the file is empty; expected a mapping with a 'projects' key")
    if not isinstance(data, dict):
        raise problem_error(
            file, f"the top level must be a mapping with a 'projects' key, not {describe_value(data)}", line=1
        )
    check_keys(AoConfig, data, (), out, lenient=reference)
    try:
        config: AoConfig | None = AoConfig.model_validate(data)
    except ValidationError as exc:
        out.add_validation_error(exc, data)
        config = None
    effective = resolve_config(config, data, base_dir, out, reference=reference)
    if out.problems or effective is None:
        raise ConfigError(out.sorted(out.problems))
    effective._warnings = out.sorted(out.warnings)
    effective._lines = lines
    effective._sha256 = hashlib.sha256(raw).hexdigest()
    effective._name = file
    return effective
