"""A YAML loader that remembers where every mapping key came from, and rejects duplicate keys.

PyYAML silently keeps the last of two equal keys, and plain dicts forget line numbers; configuration
errors must name the file and the line, so mappings load as `LineMap` (a dict with `.line` for the
mapping itself and `.key_lines[key]` for each key). Sequences load as `LineList` with `.line` and
`.item_lines`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration file is wrong. The message names the file, the line, the field and the fix."""

    def __init__(self, path: str | Path, line: int | None, message: str, fix: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = message
        self.fix = fix
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}. Fix: {fix}")


class LineMap(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]


class LineList(list[Any]):
    line: int = 0
    item_lines: list[int]


class _DuplicateKey(Exception):
    def __init__(self, key: str, first_line: int, second_line: int) -> None:
        super().__init__(key)
        self.key = key
        self.first_line = first_line
        self.second_line = second_line


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key_line = key_node.start_mark.line + 1
        if key in result.key_lines:
            raise _DuplicateKey(str(key), result.key_lines[key], key_line)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_line
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_with_lines(path: str | Path, text: str | None = None) -> Any:
    """Parse a YAML file; syntax errors and duplicate keys become one `ConfigError` with a line."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                path, None, "the file does not exist", "pass the path of an existing YAML file"
            ) from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader derives from SafeLoader
    except _DuplicateKey as dup:
        raise ConfigError(
            path,
            dup.second_line,
            f"key '{dup.key}' appears twice in the same mapping (first on line {dup.first_line})",
            "keep one of the two entries",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            path, line, f"not valid YAML ({exc.problem or exc.context})", "correct the YAML syntax"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, f"not valid YAML ({exc})", "correct the YAML syntax") from None
