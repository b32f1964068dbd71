"""tracegrade.yaml: validation, ${ENV} interpolation, one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracegrade.cli._init import starter_config
from tracegrade.config import ConfigError, load_config, parse_config


def write(text: str) -> Path:
    path = Path("tracegrade.yaml")
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_defaults() -> None:
    config = load_config()
    assert config.store == "sqlite:///.tracegrade/tracegrade.db"
    assert config.graders == []


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_DB", "sqlite:///x.db")
    config = load_config(write("store: ${TG_DB}\nrelease_from: ${TG_MISSING:-resource.v}\n"))
    assert config.store == "sqlite:///x.db"
    assert config.release_from == "resource.v"


def test_unset_env_names_the_key_and_variable() -> None:
    with pytest.raises(ConfigError, match=r"store: environment variable NOPE_NOT_SET is not set"):
        load_config(write("store: ${NOPE_NOT_SET}\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sampling: {rate: 2}\n", r"sampling\.rate: Input should be less than or equal to 1"),
        ("sampling: {rat: 0.5}\n", r"sampling\.rat: unknown key"),
        ("graders:\n  - {name: a, type: regex}\n  - {name: b}\n",
         r"graders\[1\] \(b\)\.type: Field required"),
        ("graders:\n  - {name: a, type: x}\n  - {name: a, type: y}\n",
         r"graders: Value error, grader name 'a' is used twice"),
        ("graders:\n  - {name: a, type: x, applies_to: {kind: robot}}\n",
         r"graders\[0\] \(a\)\.applies_to\.kind"),
        ("- just a list\n", r"top level must be a mapping"),
        ("store: [unclosed\n", r"not valid YAML"),
    ],
)
def test_bad_config_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config(write(text))
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("tracegrade.yaml: ")


def test_named_missing_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(Path("elsewhere.yaml"))


def test_starter_config_is_valid() -> None:
    import yaml

    config = parse_config(yaml.safe_load(starter_config()))
    assert [g.name for g in config.graders] == ["llm_status_ok", "llm_latency_5s",
                                                "tool_args_valid"]
