"""tracegrade.yaml: validation, ${ENV} interpolation, one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracegrade.cli._init import starter_config
from tracegrade.config import ConfigError, load_config, parse_config
from tracegrade.graders import GraderConfigError, build_graders


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


def test_double_dollar_escapes_a_literal_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("user", "alice")
    config = load_config(write("release_from: \"hi $${user} and $${nope_unset}\"\n"))
    assert config.release_from == "hi ${user} and ${nope_unset}"


def test_unset_env_names_the_key_and_variable() -> None:
    with pytest.raises(ConfigError, match=r"store: environment variable NOPE_NOT_SET is not set"):
        load_config(write("store: ${NOPE_NOT_SET}\n"))


TWO_JUDGES_AND_A_SOURCE = """
sources:
  - {name: lf, type: langfuse, public_key: pk, secret_key: "${TG_UNSET_LF_SECRET}"}
  - {name: files, type: jsonl, paths: [traces.jsonl]}
graders:
  - {name: short, type: length, max_chars: 10}
  - {name: tone, type: llm_judge, judge: claude, rubric: polite}
  - {name: fact, type: llm_judge, judge: gpt, rubric: factual}
judges:
  claude: {model: claude-sonnet-4-5, api_key: "${TG_UNSET_ANTHROPIC}"}
  gpt: {model: gpt-4.1-mini, api_key: "${TG_SET_OPENAI}"}
"""


def test_unset_env_under_sources_graders_judges_fails_only_where_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_SET_OPENAI", "sk-test")
    config = load_config(write(TWO_JUDGES_AND_A_SOURCE))  # loads: nothing is used yet
    config.require(("store",), ("sampling",), ("analysis",))
    config.require_sources(["files"])
    config.require_graders(["short", "fact"])
    with pytest.raises(ConfigError, match=r"^tracegrade\.yaml: judges\.claude\.api_key: "
                                          r"environment variable TG_UNSET_ANTHROPIC is not set$"):
        config.require_graders(["tone"])
    with pytest.raises(ConfigError, match="judges.claude.api_key: .* TG_UNSET_ANTHROPIC"):
        config.require_graders()  # all graders
    with pytest.raises(ConfigError, match=r"sources\[0\]\.secret_key: .* TG_UNSET_LF_SECRET"):
        config.require_sources(["lf", "files"])


def test_unset_env_where_a_value_must_validate_names_the_variable() -> None:
    text = "sources:\n  - {name: lf, type: langfuse, public_key: pk, secret_key: s,\n" \
           "     page_size: \"${TG_UNSET_PAGE_SIZE}\"}\n"
    with pytest.raises(ConfigError, match=r"sources\[0\]\.page_size: environment variable "
                                          r"TG_UNSET_PAGE_SIZE is not set"):
        load_config(write(text))


def test_unset_env_paths_match_whole_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A judge called ``a.b`` is not inside judge ``a``; an unset ``judge:`` name says so."""
    config = load_config(write(
        "graders:\n  - {name: tone, type: llm_judge, judge: a, rubric: polite}\n"
        "judges:\n  a: {model: m}\n  a.b: {model: m, api_key: \"${TG_UNSET_AB}\"}\n"))
    config.require_graders(["tone"])
    with pytest.raises(ConfigError, match="judges.a.b.api_key: environment variable TG_UNSET_AB"):
        config.require(("judges", "a.b"))
    with pytest.raises(ConfigError, match=r"judges\.a\.b\.temperature"):
        load_config(write("judges:\n  a: {model: m, api_key: \"${TG_UNSET_A}\"}\n"
                          "  a.b: {model: m, temperature: 5}\n"))
    with pytest.raises(ConfigError, match=r"graders\[0\]\.judge: environment variable TG_UNSET_J"):
        load_config(write("graders:\n  - {name: t, type: llm_judge, judge: \"${TG_UNSET_J}\","
                          " rubric: r}\njudges:\n  a: {model: m}\n"))


def test_a_value_the_command_line_gives_needs_no_variable() -> None:
    config = load_config(write(
        "sources:\n  - {name: live, type: otlp, token: \"${TG_UNSET_TOKEN}\"}\n"))
    config.require_sources(["live"], overridden=["token"])
    with pytest.raises(ConfigError, match=r"sources\[0\]\.token: .* TG_UNSET_TOKEN"):
        config.require_sources(["live"], overridden=["host"])


def test_unset_env_outside_the_deferred_sections_fails_at_load() -> None:
    with pytest.raises(ConfigError, match=r"sampling\.seed: environment variable TG_UNSET_SEED"):
        load_config(write("sampling: {seed: \"${TG_UNSET_SEED}\"}\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sampling: {rate: 2}\n", r"sampling\.rate: Input should be less than or equal to 1"),
        ("sampling: {rat: 0.5}\n", r"sampling\.rat: unknown key"),
        ("graders:\n  - {name: a, type: regex}\n  - {name: b}\n",
         r"graders\[1\] \(b\)\.type: Field required"),
        ("graders:\n  - {name: a, type: x}\n  - {name: a, type: y}\n",
         r"graders: grader name 'a' is used twice"),
        ("graders:\n  - {name: a, type: x, applies_to: {kind: robot}}\n",
         r"graders\[0\] \(a\)\.applies_to\.kind"),
        ("graders:\n  - {name: a, type: x, applies_to: {unless_output: '$.tool_calls['}}\n",
         r"graders\[0\] \(a\)\.applies_to\.unless_output: invalid JSONPath"),
        ("- just a list\n", r"top level must be a mapping"),
        ("store: [unclosed\n", r"not valid YAML"),
    ],
)
def test_bad_config_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_config(write(text))
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("tracegrade.yaml: ")


@pytest.mark.parametrize(("grader", "message"), [
    ({"name": "a", "type": "regex", "pattern": "(unclosed"},
     "graders[0] (a): pattern '(unclosed' does not compile: missing ) at position 9"),
    ({"name": "b", "type": "length", "min_chars": 10, "max_chars": 5},
     "graders[0] (b): min_chars 10 > max_chars 5"),
    ({"name": "c", "type": "regex"}, "graders[0] (c).pattern: Field required"),
])
def test_a_bad_grader_parameter_is_named_without_pydantic_noise(
        grader: dict[str, object], message: str) -> None:
    # Was "graders[0] (a).params: Value error, pattern ...": a key `params` the user never wrote.
    with pytest.raises(GraderConfigError) as info:
        build_graders(parse_config({"graders": [grader]}).graders)
    assert str(info.value) == message


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
