"""Hostile configuration files: each gives one short ConfigError with the file (and line), quickly.

Before: a 336-byte catalog of nested aliases gave a 28 MB error message; an unhashable key or
non-UTF-8 bytes gave a raw TypeError / UnicodeDecodeError; a 200,000-entry catalog was accepted after
182 s and 1.8 GB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from transforms.catalog import (
    DEFAULT_CATALOG_PATH,
    ConfigError,
    load_catalog,
    load_channel_mapping,
)
from transforms.yaml_lines import MAX_CONFIG_BYTES, MAX_ENTRIES, MAX_MESSAGE

ENTRY = """  - name: conversion_{i}
    source_system: ga4
    signal_type: event
    signal: event_{i}
    tier: micro
    kind: secondary_action
"""


def alias_bomb() -> str:
    """A catalog of 443 bytes like the issue's 336-byte one: nine levels of aliases in a description
    (9**9 = 387 million strings once expanded)."""
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(
            f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
        )
    head = "version: 1\nconversions:\n  - name: bomb\n    description:\n"
    return head + "".join(f"      - {line.split(': ', 1)[1]}\n" for line in levels)


def write(tmp_path: Path, text: str | bytes, name: str = "catalog.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_nested_aliases_are_refused_with_a_short_message(tmp_path: Path) -> None:
    path = write(tmp_path, alias_bomb())
    assert len(path.read_bytes()) < 1_000
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}, line ")
    assert "YAML aliases are not accepted" in message and len(message) < 400


def test_a_single_alias_is_refused_too(tmp_path: Path) -> None:
    text = DEFAULT_CATALOG_PATH.read_text(encoding="utf-8")
    text += "\nextra: &x [1]\nmore: *x\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"line \d+: YAML aliases are not accepted \(\*x\)"):
        load_catalog(path)


@pytest.mark.parametrize(
    "text",
    ["version: 1\n? [a, b]\n: 1\nconversions: []\n", "version: 1\nconversions:\n  - {[1]: x}\n"],
)
def test_an_unhashable_key_is_one_config_error_with_its_line(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert err.value.line in (2, 3) and "not text" in str(err.value)


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"version: 1\nconversions:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"{path}, line 3: byte b'\\xe9' at offset ")
    assert "save the file as UTF-8" in str(err.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nconversions:\n  - name: [unclosed\n    tier: micro\n")
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert err.value.line is not None and "not valid YAML" in str(err.value)


def test_a_200000_entry_catalog_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("version: 1\nconversions:\n")
        for i in range(200_000):
            fh.write(ENTRY.format(i=i))
    assert path.stat().st_size > MAX_CONFIG_BYTES
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert "more than the limit of 1,000,000" in str(err.value)


def test_a_compact_catalog_over_the_entry_limit_is_refused(tmp_path: Path) -> None:
    """Under 1 MB but with more entries than allowed (flow style): refused before entries are built."""
    items = ",".join("{}" for _ in range(MAX_ENTRIES + 1))
    path = write(tmp_path, f"version: 1\nconversions: [{items}]\n")
    assert path.stat().st_size < MAX_CONFIG_BYTES
    with pytest.raises(ConfigError, match=f"{MAX_ENTRIES + 1:,} entries in one list, more than the limit"):
        load_catalog(path)


def test_the_channel_mapping_has_the_same_limits(tmp_path: Path) -> None:
    path = write(tmp_path, "mapping: &m {EMAIL_MARKETING: Email}\nother: *m\n", "mapping.yaml")
    with pytest.raises(ConfigError, match="YAML aliases are not accepted"):
        load_channel_mapping(path)
    big = write(tmp_path, "#" * (MAX_CONFIG_BYTES + 1), "big.yaml")
    with pytest.raises(ConfigError, match="more than the limit"):
        load_channel_mapping(big)


def test_a_long_value_is_quoted_as_a_short_excerpt(tmp_path: Path) -> None:
    entry = ENTRY.format(i=1) + "    description: ['" + "<b>" * 200_000 + "']\n"
    path = write(tmp_path, "version: 1\nconversions:\n" + entry)
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert len(str(err.value)) < MAX_MESSAGE + 200
    assert "'description' must be text, not [" in str(err.value) and "(600,004 characters)" in str(err.value)
    # A name is quoted whole in several messages: the message as a whole is capped too.
    path = write(tmp_path, "version: 1\nconversions:\n  - name: ['" + "<b>" * 200_000 + "']\n")
    with pytest.raises(ConfigError) as err:
        load_catalog(path)
    assert len(str(err.value)) < MAX_MESSAGE + 200
