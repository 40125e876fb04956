"""The deployment files say what the code does: every Streamlit option exists, every engine
command in a unit or the compose file parses with the real CLI, the env names are ours."""

from __future__ import annotations

import re
import shlex
import tomllib
from importlib.metadata import entry_points

import pytest
import yaml

from nas_core.cli import build_parser
from nas_core.common.workspace import ENV_VAR, STORAGE_ENV
from tests.helpers import ROOT
from ui.identity import HEADER_ENV, SECRET_ENV

DEPLOY = ROOT / "deploy"


@pytest.mark.parametrize("path", [DEPLOY / "config.toml", ROOT / ".streamlit" / "config.toml"])
def test_streamlit_config_keys_exist(path):
    import streamlit.config as config

    config.get_option("server.port")  # loads the option table
    data = tomllib.loads(path.read_text())
    keys = [f"{section}.{key}" for section, values in data.items() for key in values]
    unknown = [k for k in keys if k not in config._config_options]
    assert not unknown, unknown


def test_secrets_example_has_storage_and_oidc_login():
    secrets = tomllib.loads((DEPLOY / "secrets.toml.example").read_text())
    assert secrets["storage"]["url"].startswith("postgresql://")
    assert {"redirect_uri", "cookie_secret", "client_id", "client_secret",
            "server_metadata_url"} <= set(secrets["auth"])
    assert secrets["auth"]["redirect_uri"].endswith("/oauth2callback")


def engine_argv(command: str) -> list[str]:
    """The arguments after `-m nas_core` in a shell command line."""
    words = shlex.split(command.replace("%i", "1").replace("%%", "%"))
    return words[words.index("nas_core") + 1:]


def test_systemd_units_run_real_commands():
    parser = build_parser()
    units = {p.name: p.read_text() for p in (DEPLOY / "systemd").iterdir()}
    assert {"esm-nas-app.service", "esm-nas-worker@.service", "esm-nas-backup.service",
            "esm-nas-backup.timer"} == set(units)
    for name, text in units.items():
        for line in re.findall(r"^ExecStart=(.*)$", text, re.M):
            if "nas_core" in line:
                inner = re.search(r"-c '(.*)'", line).group(1)
                inner = re.sub(r"\$\([^)]*\)", "X", inner)
                args = parser.parse_args(engine_argv(inner))
                assert args.command in ("worker", "backup"), name
            else:
                assert "streamlit run app.py" in line
        if name.endswith(".service"):
            assert "EnvironmentFile=/etc/esm-nas/env" in text


def test_compose_services_and_environment():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "app", "worker-gpu1"} <= set(services)
    env = services["app"]["environment"]
    assert env[STORAGE_ENV].startswith("postgresql://") and ENV_VAR in env
    assert services["worker-gpu1"]["environment"] == env
    worker = services["worker-gpu1"]["command"]
    args = build_parser().parse_args(worker[worker.index("nas_core") + 1:])
    assert args.command == "worker" and args.device == "cuda:0"
    assert services["app"]["ports"] == ["127.0.0.1:8501:8501"]


def test_env_example_names_are_the_ones_the_code_reads():
    names = set(re.findall(r"^#?\s*([A-Z_]+)=", (DEPLOY / "env.example").read_text(), re.M))
    assert {STORAGE_ENV, ENV_VAR, HEADER_ENV, SECRET_ENV} <= names


def test_the_esm_nas_console_script_is_the_engine_cli(capsys):
    """pyproject's entry point, as installed: `esm-nas` runs the same parser as `-m nas_core`."""
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "esm-nas"]
    assert script.value == "nas_core.cli:main"
    with pytest.raises(SystemExit) as done:
        script.load()(["search", "--help"])
    assert done.value.code == 0 and "--sampler" in capsys.readouterr().out
