"""A YAML loader that remembers where every mapping key came from, and rejects duplicate keys.

PyYAML silently keeps the last of two equal keys, and plain dicts forget line numbers; configuration
errors must name the file and the line, so mappings load as `LineMap` (a dict with `.line` for the
mapping itself and `.key_lines[key]` for each key). Sequences load as `LineList` with `.line` and
`.item_lines`.

Configuration files are also input someone may have pasted from elsewhere, so loading is bounded:
at most `MAX_CONFIG_BYTES` (1 MB, checked before the file is read), at most `MAX_ENTRIES` (2,000)
items in any one mapping or list (checked before they are built), UTF-8 only, no YAML aliases
(`*name`; a few nested ones expand to gigabytes), keys that are text or numbers, and an error
message quotes at most `MAX_EXCERPT` characters of any value. Each refusal is one `ConfigError`
with the file and, where there is one, the line.

The checks every config file shares (its top-level keys and version, "did you mean" suggestions) are
here too, used by the catalog, the channel mapping and the experiments file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

MAX_CONFIG_BYTES = 1_000_000
MAX_ENTRIES = 2_000
MAX_EXCERPT = 80
# A whole message is cut at this length too, whatever quoted it.
MAX_MESSAGE = 600


def excerpt(value: object) -> str:
    """`repr(value)`, cut to MAX_EXCERPT characters: error messages quote configuration, not copy it."""
    text = repr(value)
    return text if len(text) <= MAX_EXCERPT else text[:MAX_EXCERPT] + f"… ({len(text):,} characters)"


class ConfigError(ValueError):
    """A configuration file is wrong. The message names the file, the line, the field and the fix."""

    def __init__(self, path: str | Path, line: int | None, message: str, fix: str) -> None:
        self.path = str(path)
        self.line = line
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "…"
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


class _Refused(Exception):
    def __init__(self, line: int, message: str, fix: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.fix = fix


class _LineLoader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:  # type: ignore[override]
        # Refused while composing, before anything is expanded or built.
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                event.start_mark.line + 1,
                f"YAML aliases are not accepted (*{str(getattr(event, 'anchor', ''))[:MAX_EXCERPT]})",
                "write the value out in full instead of referring to an anchor",
            )
        return super().compose_node(parent, index)  # type: ignore[no-any-return]


def _check_size(node: yaml.CollectionNode) -> None:
    if len(node.value) > MAX_ENTRIES:
        raise _Refused(
            node.start_mark.line + 1,
            f"{len(node.value):,} entries in one {'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}, "
            f"more than the limit of {MAX_ENTRIES:,}",
            f"keep each list and mapping to at most {MAX_ENTRIES:,} entries",
        )


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    _check_size(node)
    loader.flatten_mapping(node)
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key_line = key_node.start_mark.line + 1
        if isinstance(key, list | dict | set):  # unhashable: `? [a, b]` or `{[1]: x}`
            raise _Refused(
                key_line,
                f"a key is {type(key).__name__} {excerpt(key)}, not text",
                "write each key as plain text",
            )
        if key in result.key_lines:
            raise _DuplicateKey(str(key), result.key_lines[key], key_line)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_line
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    _check_size(node)
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
            size = path.stat().st_size
            if size > MAX_CONFIG_BYTES:
                raise _too_big(path, size)
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(
                path, None, "the file does not exist", "pass the path of an existing YAML file"
            ) from None
        except IsADirectoryError:
            raise ConfigError(path, None, "this is a directory", "pass the path of a YAML file") from None
        if len(data) > MAX_CONFIG_BYTES:  # it grew since stat
            raise _too_big(path, len(data))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                path,
                data.count(b"\n", 0, exc.start) + 1,
                f"byte {data[exc.start : exc.start + 1]!r} at offset {exc.start} is not UTF-8",
                "save the file as UTF-8",
            ) from None
    elif len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise _too_big(path, len(text.encode("utf-8", "surrogatepass")))
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader derives from SafeLoader
    except _Refused as refused:
        raise ConfigError(path, refused.line, refused.message, refused.fix) from None
    except RecursionError:
        raise ConfigError(path, None, "nested too deeply", "flatten the structure") from None
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
        problem = str(exc.problem or exc.context)[:MAX_EXCERPT]
        raise ConfigError(path, line, f"not valid YAML ({problem})", "correct the YAML syntax") from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            path, None, f"not valid YAML ({str(exc)[:MAX_EXCERPT]})", "correct the YAML syntax"
        ) from None


def _too_big(path: Path, size: int) -> ConfigError:
    return ConfigError(
        path,
        None,
        f"the file is {size:,} bytes, more than the limit of {MAX_CONFIG_BYTES:,} for a configuration file",
        "keep the catalog or mapping under 1 MB (at most 2,000 entries per list)",
    )


# --- shared checks of the config files (catalog, channel mapping, experiments) -----------------------


def suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(options: Iterable[str]) -> str:
    return ", ".join(f"'{o}'" for o in options)


def check_top_level(path: str, doc: Any, keys: tuple[str, ...], what: str) -> LineMap:
    if not isinstance(doc, LineMap):
        raise ConfigError(
            path, 1, f"the {what} must be a YAML mapping with keys {one_of(keys)}", "see the shipped default"
        )
    for key in doc:
        if key not in keys:
            raise ConfigError(
                path,
                doc.key_lines[key],
                f"unknown top-level key '{key}'" + suggest(key, keys),
                f"use only {one_of(keys)}",
            )
    version = doc.get("version", 1)
    if version != 1:
        raise ConfigError(
            path, doc.key_lines.get("version"), f"unsupported version {excerpt(version)}", "set 'version: 1'"
        )
    return doc
