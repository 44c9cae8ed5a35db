"""Deployment: the runtime install script in a fresh venv, the Dockerfile, railway.toml, the CLI, the extra gate."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import tomllib

from fastembed_adapter import cli
from fastembed_adapter.server import ServerSettings
from fastembed_adapter.server.routes import ROUTES
from server_support import live_server
from weights import TEST_CACHE

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
RAILWAY = tomllib.loads((ROOT / "railway.toml").read_text(encoding="utf-8"))
HEAVY = ("torch", "transformers", "optimum", "sentence_transformers", "onnx")


def stages(dockerfile: str) -> dict[str, str]:
    """Text of each ``FROM ... AS name`` stage."""
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\w+)\s*$", dockerfile, flags=re.MULTILINE | re.IGNORECASE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def dockerfile_env(stage: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.+)$", stage.replace("\\\n", " "), flags=re.MULTILINE):
        for pair in shlex.split(line):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def dockerfile_cmd(stage: str) -> list[str]:
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])\s*$", stage, flags=re.MULTILINE)
    return list(json.loads(cmd))


# -- Dockerfile and railway.toml ------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_with_a_torch_free_runtime():
    found = stages(DOCKERFILE)
    assert list(found) == ["build", "runtime"]
    build, runtime = found["build"], found["runtime"]
    assert '"torch==2.13.0"' in build and "download.pytorch.org/whl/cpu" in build
    assert ".[prepare]" in build and "ARG MODEL=sentence-transformers/all-mpnet-base-v2" in build
    assert "prepare --model" in build and "ARG PREPARED" in build
    assert "scripts/install-runtime.sh" in runtime and "torch" not in runtime.replace("no torch", "")
    users = re.findall(r"^USER\s+(\S+)", runtime, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in runtime and "/health" in runtime
    assert "COPY --from=build --chown=app:app /model /app/model" in runtime


def test_railway_toml_agrees_with_the_dockerfile_and_the_cli(monkeypatch):
    build, deploy = RAILWAY["build"], RAILWAY["deploy"]
    assert build["builder"] == "DOCKERFILE" and (ROOT / build["dockerfilePath"]).is_file()
    runtime = stages(DOCKERFILE)["runtime"]
    assert shlex.split(deploy["startCommand"]) == dockerfile_cmd(runtime)
    assert deploy["healthcheckPath"] == "/health" and "/health" in {route.path for route in ROUTES}
    start_period = int(re.search(r"--start-period=(\d+)s", runtime).group(1))
    assert deploy["healthcheckTimeout"] >= start_period  # covers model loading
    assert deploy["restartPolicyType"] in ("ON_FAILURE", "ALWAYS") and deploy["restartPolicyMaxRetries"] > 0
    defaults = ServerSettings(model="m")
    assert deploy["drainingSeconds"] > defaults.drain_grace + defaults.drain_timeout  # SIGKILL only after our drain
    # The start command, with the image's environment plus Railway's PORT, yields the intended settings.
    env = dockerfile_env(runtime)
    assert env["FEA_MODEL"] == "/app/model" and env["FEA_HOST"] == "0.0.0.0"
    assert f"EXPOSE {env['PORT']}" in runtime and int(env["PORT"]) == ServerSettings(model="m").port
    for key, value in {**env, "PORT": "7777"}.items():
        monkeypatch.setenv(key, value)
    captured = []
    monkeypatch.setattr("fastembed_adapter.server.run", lambda settings: captured.append(settings) or 0)
    monkeypatch.setattr("fastembed_adapter.server.logs.configure_logging", lambda *args: None)
    argv = shlex.split(deploy["startCommand"])
    assert argv[0] == "fastembed-adapter" and cli.main(argv[1:]) == 0
    (settings,) = captured
    assert (settings.model, settings.host, settings.port) == ("/app/model", "0.0.0.0", 7777)


def test_cli_flags_env_fallbacks_and_defaults(monkeypatch):
    captured = []
    monkeypatch.setattr("fastembed_adapter.server.run", lambda settings: captured.append(settings) or 0)
    monkeypatch.setattr("fastembed_adapter.server.logs.configure_logging", lambda *args: None)
    assert cli.main(["serve", "--model", "m"]) == 0
    assert captured[-1] == ServerSettings(model="m")  # unset flags keep the ServerSettings defaults
    for key, value in {
        "FEA_MODEL": "from-env",
        "FEA_PORT": "9001",
        "PORT": "9002",  # FEA_PORT wins over PORT
        "FEA_MAX_BATCH_TEXTS": "7",
        "FEA_MAX_BATCH_WAIT_MS": "0.5",
        "FEA_AUTO_TRUNCATE": "true",
        "FEA_API_KEY": "k",
        "FEA_LOG_FORMAT": "text",
    }.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["serve", "--max-queue", "3"]) == 0
    settings = captured[-1]
    assert (settings.model, settings.port, settings.max_batch_texts, settings.max_queue) == ("from-env", 9001, 7, 3)
    assert settings.max_batch_wait_ms == 0.5 and settings.auto_truncate and settings.api_key == "k"
    assert settings.log_format == "text"
    monkeypatch.delenv("FEA_PORT")
    assert cli.main(["serve", "--no-auto-truncate"]) == 0
    assert captured[-1].port == 9002 and captured[-1].auto_truncate is False


def test_cli_rejects_bad_values(capsys, monkeypatch):
    monkeypatch.setattr("fastembed_adapter.server.logs.configure_logging", lambda *args: None)
    assert cli.main(["serve", "--model", "m", "--max-queue", "0"]) == 2  # a usage error, as a bad flag
    assert "max_queue must be a number > 0" in capsys.readouterr().err


# -- imports and the extra gate -------------------------------------------------------------------------


def test_runtime_never_imports_the_server(prepared_base):
    script = (
        "import sys, fastembed_adapter\n"
        "fastembed_adapter.OnnxSentenceEncoder(sys.argv[1], threads=1).encode(['x'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('fastembed_adapter.server', 'starlette', 'uvicorn'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(prepared_base("bert"))], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_serve_without_the_extra_names_the_install_command():
    script = (
        "import sys\nsys.modules['uvicorn'] = None\n"
        "try:\n    import fastembed_adapter.server\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and "pip install 'fastembed-adapter[serve]'" in out and "uvicorn" in out


# -- the runtime environment the Docker image gets ------------------------------------------------------


def _runtime_venv() -> Path:
    """A fresh venv made by scripts/install-runtime.sh, cached by the hash of what it installs."""
    digest = hashlib.sha256()
    for path in [ROOT / "pyproject.toml", ROOT / "scripts/install-runtime.sh", *sorted((ROOT / "src").rglob("*.py"))]:
        digest.update(path.relative_to(ROOT).as_posix().encode() + path.read_bytes())
    cache = TEST_CACHE / "runtime-venvs"
    venv = cache / digest.hexdigest()[:16]
    if not (venv / "ok").exists():
        if cache.exists():  # keep only the current one
            for old in cache.iterdir():
                shutil.rmtree(old, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        subprocess.run(["bash", str(ROOT / "scripts/install-runtime.sh"), str(python), str(ROOT)], check=True)
        (venv / "ok").write_text("installed\n")
    return venv


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def test_runtime_venv_serves_without_torch(prepared_base, tmp_path):
    venv = _runtime_venv()
    python = venv / "bin" / "python"
    probe = "import importlib.util as u, json, sys; print(json.dumps([m for m in sys.argv[1:] if u.find_spec(m)]))"
    present = subprocess.run([str(python), "-c", probe, *HEAVY], capture_output=True, text=True, check=True)
    assert json.loads(present.stdout) == []
    with live_server(prepared_base("bert"), tmp_path, python=str(python), env={"PYTHONPATH": ""}) as live:
        response = httpx.post(f"{live.base_url}/v1/embeddings", json={"input": ["hello", "world"]}, timeout=30)
        assert response.status_code == 200 and len(response.json()["data"]) == 2
        versions = httpx.get(f"{live.base_url}/info").json()["versions"]
        assert versions["starlette"] and versions["uvicorn"]
    size_mb = _size(venv) / 1e6
    assert size_mb < 600, f"the runtime venv grew to {size_mb:.0f} MB"
    print(f"runtime venv: {size_mb:.0f} MB at {venv}")  # noqa: T201
    if os.environ.get("VIRTUAL_ENV"):
        print(f"dev venv (torch, sentence-transformers): {_size(Path(os.environ['VIRTUAL_ENV'])) / 1e6:.0f} MB")  # noqa: T201
