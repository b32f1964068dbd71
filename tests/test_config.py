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


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        ("sqlite:///t.db", "sqlite:///v/t.db"),
        ("sqlite:///data/t.db?timeout=5", "sqlite:///v/data/t.db?timeout=5"),
        ("sqlite+pysqlite:///t.db", "sqlite+pysqlite:///v/t.db"),
        ("sqlite:////abs/t.db", "sqlite:////abs/t.db"),
        ("sqlite:///~/t.db", "sqlite:///~/t.db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_relative_sqlite_store_is_relative_to_the_config_file(store: str, expected: str) -> None:
    Path("v").mkdir()
    path = Path("v") / "tracegrade.yaml"
    path.write_text(f"store: {store}\n", encoding="utf-8")
    assert load_config(path).store == expected


def test_store_in_the_current_directory_config_is_unchanged() -> None:
    assert load_config(write("store: sqlite:///t.db\n")).store == "sqlite:///t.db"


def test_store_from_env_in_a_config_file_is_relative_to_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_DB", "sqlite:///x.db")
    Path("v").mkdir()
    path = Path("v") / "tracegrade.yaml"
    path.write_text("store: ${TG_DB}\n", encoding="utf-8")
    assert load_config(path).store == "sqlite:///v/x.db"


def test_starter_config_documents_where_a_relative_store_lives() -> None:
    assert "relative to this file" in starter_config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("graders:\n  - {name: café, type: status_ok}\n",
         r"graders\[0\] \(café\)\.name: 'café' is not allowed: use only ASCII letters, digits "
         r"and _ \. : -$"),
        ("judges:\n  default: {model: m, structured_output: yes_please}\n",
         r"judges\.default\.structured_output: 'yes_please' is not allowed: use one of auto, "
         r"json_schema, none$"),
    ],
)
def test_pattern_errors_say_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(text))


def test_unknown_key_is_named_before_a_missing_one() -> None:
    from pydantic import BaseModel, ConfigDict, ValidationError

    from tracegrade._validation import describe_validation_error

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        max_ms: int

    with pytest.raises(ValidationError) as info:
        Params.model_validate({"max_mss": 5})
    assert describe_validation_error(info.value) == "max_mss: unknown key (did you mean max_ms?)"
    with pytest.raises(ValidationError) as info:
        Params.model_validate({"max_mss": 5, "other": 1})
    assert describe_validation_error(info.value) == \
        "max_mss: unknown key (did you mean max_ms?) (and 1 more)"
