"""``FEA_*`` fallbacks: one helper declares every flag with its variable, parsed by the flag's type at parse time.

A bad value is a usage error (exit 2) naming the variable, and only for the command that reads it.
"""

from __future__ import annotations

import argparse
import json

import pytest

from checks import read_json
from cli_support import run_in_process
from fastembed_adapter.cli import _parser, prepare_main
from fastembed_adapter.layout import MANIFEST_NAME
from tiny import FP32_FILE


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    (sub,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", ["info", "prepare", "bench", "serve"])
@pytest.mark.parametrize(("name", "value"), [("FEA_THREADS", "auto"), ("FEA_BENCH_ROUNDS", "x"), ("FEA_PORT", "y")])
def test_a_bad_env_value_never_breaks_help(capsys, monkeypatch, command, name, value):
    monkeypatch.setenv(name, value)
    code, out, _ = run_in_process(capsys, command, "--help")
    assert code == 0 and out.startswith(f"usage: fastembed-adapter {command}")


def test_bad_env_value_is_a_usage_error_of_the_command_that_reads_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FEA_BENCH_ROUNDS", "x")
    code, _, err = run_in_process(capsys, "bench", "--prepared", str(tmp_path), "--source", str(tmp_path))
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "fastembed-adapter bench: error: argument --rounds: "
        "environment variable FEA_BENCH_ROUNDS='x' is invalid: expected an integer"
    )
    assert "Traceback" not in err


def test_bad_env_value_leaves_other_commands_alone(capsys, monkeypatch, prepared_base, tmp_path):
    monkeypatch.setenv("FEA_THREADS", "auto")  # read by prepare, bench and serve; info has no --threads
    code, out, err = run_in_process(capsys, "info", str(prepared_base("bert")))
    assert code == 0, err
    assert out.startswith("folder")
    code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path))
    assert code == 2
    assert "argument --threads: environment variable FEA_THREADS='auto' is invalid: expected an integer" in err
    code, _, err = run_in_process(capsys, "--model", str(tmp_path), entry=prepare_main)
    assert code == 2 and "FEA_THREADS='auto'" in err


def test_a_flag_beats_its_env_value(capsys, monkeypatch, captured_options, tmp_path):
    monkeypatch.setenv("FEA_THREADS", "auto")
    monkeypatch.setenv("FEA_MAX_SEQ_LENGTH", "99")
    code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path), "--threads", "3", "--json")
    assert code == 0, err
    (options,) = captured_options
    assert options.threads == 3 and options.max_seq_length == 99


def test_env_value_checked_against_choices(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("FEA_QUANTIZE", "int4")
    code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path))
    assert code == 2
    assert "FEA_QUANTIZE='int4' is invalid: choose from int8, none" in err


def test_required_flag_from_env(capsys, monkeypatch, captured_options, tmp_path):
    monkeypatch.setenv("FEA_MODEL", str(tmp_path))
    code, _, err = run_in_process(capsys, "prepare", "--json")
    assert code == 0, err
    assert captured_options[0].model == str(tmp_path)


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, (), {"force": False, "benchmark": True, "allow_fp32_fallback": False}),
        ({"FEA_FORCE": "1", "FEA_BENCHMARK": "no"}, (), {"force": True, "benchmark": False}),
        ({"FEA_FORCE": "TRUE", "FEA_ALLOW_FP32_FALLBACK": "on"}, (), {"force": True, "allow_fp32_fallback": True}),
        ({"FEA_FORCE": "yes"}, ("--no-force",), {"force": False}),
        ({"FEA_BENCHMARK": "off"}, ("--benchmark",), {"benchmark": True}),
        ({}, ("--no-benchmark", "--force"), {"force": True, "benchmark": False}),
    ],
)
def test_boolean_flags_have_env_fallbacks(capsys, monkeypatch, captured_options, tmp_path, env, args, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path), "--json", *args)
    assert code == 0, err
    (options,) = captured_options
    assert {key: getattr(options, key) for key in expected} == expected


def test_boolean_env_fallback_switches_info_to_json(capsys, monkeypatch, prepared_base):
    folder = prepared_base("bert")
    monkeypatch.setenv("FEA_JSON", "1")
    code, out, err = run_in_process(capsys, "info", str(folder))
    assert code == 0, err
    assert json.loads(out) == read_json(folder / MANIFEST_NAME)
    code, out, _ = run_in_process(capsys, "info", str(folder), "--no-json", "--file-name", FP32_FILE)
    assert code == 0 and out.startswith("folder")
    monkeypatch.setenv("FEA_JSON", "maybe")
    code, _, err = run_in_process(capsys, "info", str(folder))
    assert code == 2
    assert "FEA_JSON='maybe' is invalid: 'maybe' is not a boolean: use 1/0, true/false, yes/no or on/off" in err


def test_serve_env_fallbacks(monkeypatch):
    monkeypatch.setenv("FEA_MODEL", "/models/x")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("FEA_AUTO_TRUNCATE", "yes")
    monkeypatch.setenv("FEA_MAX_BATCH_WAIT_MS", "0.5")
    args = _parser().parse_args(["serve"])
    assert (args.model, args.port, args.auto_truncate, args.max_batch_wait_ms) == ("/models/x", 9000, True, 0.5)
    assert args.max_queue is None  # unset: ServerSettings keeps its default
    monkeypatch.setenv("FEA_PORT", "9100")  # FEA_PORT wins over PORT
    assert _parser().parse_args(["serve"]).port == 9100


def test_serve_bad_env_value_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setenv("FEA_MAX_QUEUE", "lots")
    code, _, err = run_in_process(capsys, "serve", "--model", "x")
    assert code == 2 and "FEA_MAX_QUEUE='lots' is invalid: expected an integer" in err


def test_empty_env_value_counts_as_unset(capsys, monkeypatch, captured_options, tmp_path):
    monkeypatch.setenv("FEA_THREADS", "")
    code, _, err = run_in_process(capsys, "prepare", "--model", str(tmp_path), "--json")
    assert code == 0, err
    assert captured_options[0].threads is None


def test_every_flag_has_an_env_fallback_shown_in_help():
    missing = []
    for name, parser in _commands().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or not action.option_strings:
                continue
            if "[env: FEA_" not in (action.help or ""):
                missing.append(f"{name} {action.option_strings[0]}")
    assert missing == []


def test_help_names_the_variable(capsys):
    code, out, _ = run_in_process(capsys, "prepare", "--help")
    assert code == 0
    flat = " ".join(out.split())
    for text in ("[env: FEA_THREADS]", "[env: FEA_QUALITY_TARGET]", "--force, --no-force", "[env: FEA_FORCE]"):
        assert text in flat
