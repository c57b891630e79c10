"""The deployable image: Dockerfile, compose.yaml and their helper scripts.

No Docker engine runs where the tests do, so the files are checked for what a build and a
deployment rely on (hadolint, run by `make lint`, checks the Dockerfile's style), and the two
scripts the image runs are run here for real.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from bot.config import BotConfig

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on the backport there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined and comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        pending += " " + line.removesuffix("\\").strip()
        if not line.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            lines.append((keyword.upper(), rest.strip()))
            pending = ""
    return lines


def build_args() -> dict[str, str]:
    return {
        key: value.strip('"')
        for kind, rest in instructions()
        if kind == "ARG" and "=" in rest
        for key, _, value in [rest.partition("=")]
    }


def env() -> dict[str, str]:
    found: dict[str, str] = {}
    for kind, rest in instructions():
        if kind == "ENV":
            found.update(pair.split("=", 1) for pair in shlex.split(rest))
    return found


def compose_service() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["stylebot"]


# --- the Dockerfile -------------------------------------------------------------------------


def test_image_installs_the_torch_the_makefile_tests_with():
    spec = re.search(r"^TORCH_SPEC \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    pins = {Requirement(word).name: str(Requirement(word).specifier) for word in spec.split()}
    args = build_args()
    assert pins == {"torch": f"=={args['TORCH_VERSION']}", "torchvision": f"=={args['TORCHVISION_VERSION']}"}
    # ...and pyproject.toml's ranges accept them, or the dependency layer's pip would refuse to resolve.
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ranges = {r.name: r.specifier for r in map(Requirement, declared)}
    assert ranges["torch"].contains(args["TORCH_VERSION"])
    assert ranges["torchvision"].contains(args["TORCHVISION_VERSION"])
    torch_install = next(rest for kind, rest in instructions() if kind == "RUN" and '"torch==${TORCH_VERSION}"' in rest)
    assert '"torchvision==${TORCHVISION_VERSION}"' in torch_install


def test_dependencies_are_installed_before_and_apart_from_the_code():
    """Copying code invalidates every later layer; the dependency install must come before any of it."""
    steps = instructions()
    deps_at = next(i for i, (kind, rest) in enumerate(steps) if kind == "RUN" and "requirements.py" in rest)
    copied_before = [rest.split()[:-1] for kind, rest in steps[:deps_at] if kind == "COPY"]
    assert copied_before == [["pyproject.toml", "docker/requirements.py"]]
    assert '--extras "${EXTRAS}"' in steps[deps_at][1], "the extras come from the EXTRAS build argument"
    assert "EXTRAS" in build_args()
    code_copies = [
        i for i, (kind, rest) in enumerate(steps) if kind == "COPY" and rest.split()[0] in ("stylecore", "bot")
    ]
    assert len(code_copies) == 2 and min(code_copies) > deps_at
    install = next(rest for kind, rest in steps[max(code_copies) :] if kind == "RUN" and "pip install" in rest)
    assert "--no-deps" in install.split()


def test_image_runs_unprivileged_keeps_data_in_a_volume_and_serves_health_beyond_loopback():
    settings = env()
    assert settings["STYLEBOT_HEALTH_HOST"] == "0.0.0.0"
    steps = instructions()
    users = [rest for kind, rest in steps if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    volumes = [v for kind, rest in steps if kind == "VOLUME" for v in json.loads(rest)]
    assert settings["STYLEBOT_DATA_DIR"] in volumes
    assert settings["TORCH_HOME"].startswith(settings["STYLEBOT_DATA_DIR"] + "/"), "downloaded weights persist too"
    assert [rest for kind, rest in steps if kind == "EXPOSE"] == [settings["STYLEBOT_HEALTH_PORT"]]


def test_healthcheck_runs_the_shipped_script():
    steps = instructions()
    check = next(rest for kind, rest in steps if kind == "HEALTHCHECK")
    command = json.loads(check.split(" CMD ", 1)[1])
    assert command[0] == "python" and command[1] == "/app/docker/healthcheck.py"
    workdir = [rest for kind, rest in steps if kind == "WORKDIR"][-1]
    copied = [rest.split() for kind, rest in steps if kind == "COPY"]
    assert ["docker/healthcheck.py", "./docker/"] in copied and workdir == "/app"
    timeout = float(re.search(r"--timeout=(\d+)s", check).group(1))
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "docker" / "healthcheck.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert timeout > script.TIMEOUT_S, "the script gives up and says why before Docker kills it"


def test_dockerignore_keeps_secrets_out_and_lets_everything_copied_in():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"]
    for private in (".env", ".git", ".venv", "data/"):
        assert private in patterns

    def ignored(path: str) -> bool:
        for pattern in (p.rstrip("/") for p in patterns):
            bare = pattern.removeprefix("**/")
            if fnmatch(path, pattern) or fnmatch(Path(path).name, bare) or path.startswith(pattern + "/"):
                return True
        return False

    sources = [src for kind, rest in instructions() if kind == "COPY" for src in rest.split()[:-1]]
    assert sources and not [src for src in sources if ignored(src)]
    assert ignored(".env") and ignored("stylecore/__pycache__")


# --- the scripts the image runs ---------------------------------------------------------------


def run_requirements(*args: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "docker" / "requirements.py"
    return subprocess.run(
        [sys.executable, str(script), str(ROOT / "pyproject.toml"), *args], capture_output=True, text=True, timeout=60
    )


def test_requirements_lists_pyproject_dependencies_and_the_chosen_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    plain = run_requirements()
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split("\n")[:-1] == project["dependencies"]
    with_ray = run_requirements("--extras", " ray ")
    assert with_ray.stdout.split("\n")[:-1] == project["dependencies"] + project["optional-dependencies"]["ray"]
    for line in with_ray.stdout.split():
        Requirement(line)  # each line is something pip accepts
    assert run_requirements("--extras", "").stdout == plain.stdout


def test_requirements_refuses_an_unknown_extra():
    typo = run_requirements("--extras", "ray,rya")
    assert typo.returncode != 0
    assert "unknown extra(s) rya" in typo.stderr and "ray" in typo.stderr


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # the name http.server looks up
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()
    thread.join()


def run_healthcheck(**settings: str) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK as Docker runs it: a fresh interpreter, the image's environment plus `settings`."""
    environ = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    environ.update({key: value for key, value in env().items() if key.startswith("STYLEBOT_")})
    environ.update(settings)
    return subprocess.run(
        [sys.executable, str(ROOT / "docker" / "healthcheck.py")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_healthcheck_passes_while_the_bot_answers_200(health_server):
    port, _ = health_server
    # The image listens on 0.0.0.0; the check asks over loopback and ignores any proxy setting.
    out = run_healthcheck(
        STYLEBOT_HEALTH_PORT=str(port), HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("healthy")


def test_healthcheck_fails_while_the_bot_reports_itself_unhealthy(health_server):
    port, handler = health_server
    handler.status = 503
    out = run_healthcheck(STYLEBOT_HEALTH_PORT=str(port))
    assert out.returncode == 1
    assert "answered 503" in out.stdout


def test_healthcheck_fails_when_nothing_listens():
    with socket.socket() as probe:  # a port that was free a moment ago and that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = run_healthcheck(STYLEBOT_HEALTH_PORT=str(port))
    assert out.returncode == 1
    assert "did not answer" in out.stdout


@pytest.mark.parametrize("off", ["off", "OFF", "disabled", "none"])
def test_healthcheck_passes_when_the_health_port_is_turned_off(off: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STYLEBOT_HEALTH_PORT", off)
    assert BotConfig.from_env(dotenv_path=None).health_port is None
    out = run_healthcheck(STYLEBOT_HEALTH_PORT=off)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "turned off" in out.stdout


def test_healthcheck_fails_on_settings_the_bot_cannot_start_with():
    out = run_healthcheck(STYLEBOT_HEALTH_PORT="eighty")
    assert out.returncode == 1
    assert "STYLEBOT_HEALTH_PORT" in out.stdout


# --- compose.yaml ---------------------------------------------------------------------------


def seconds(duration: str) -> float:
    """A compose duration such as "90s" or "1m30s"."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_reserves_the_gpu_and_runs_under_an_init():
    service = compose_service()
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    assert service["init"] is True
    assert service["build"]["context"] == "."
    assert "EXTRAS" in service["build"]["args"] and "EXTRAS" in build_args()


def test_compose_keeps_data_in_a_named_volume_and_reads_secrets_from_env_file():
    document = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = document["services"]["stylebot"]
    assert service["env_file"] in (".env", [".env"])
    environment = service["environment"]
    data_dir = env()["STYLEBOT_DATA_DIR"]
    assert environment["STYLEBOT_DATA_DIR"] == data_dir, "a copied .env.example must not move the database"
    volume = next(v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == data_dir)
    assert volume in document["volumes"], "a named volume, so data survives `docker compose down`"
    assert environment["STYLEBOT_HEALTH_HOST"] == "0.0.0.0"


def test_compose_publishes_health_on_the_hosts_loopback_only():
    published = compose_service()["ports"]
    assert published, "the health port is published"
    for mapping in published:
        host_ip, _, container_port = str(mapping).split(":")
        assert host_ip == "127.0.0.1"
        assert container_port == env()["STYLEBOT_HEALTH_PORT"]


def test_compose_waits_longer_than_the_bots_shutdown_grace(monkeypatch: pytest.MonkeyPatch):
    grace = BotConfig().shutdown_grace
    monkeypatch.delenv("STYLEBOT_SHUTDOWN_GRACE", raising=False)
    assert BotConfig.from_env(dotenv_path=None).shutdown_grace == grace
    assert seconds(compose_service()["stop_grace_period"]) >= grace + 15, "time to save state after the grace"
    assert seconds("1m30s") == 90 and seconds("500ms") == 0.5


def test_readme_docker_run_matches_compose():
    """The README's plain `docker run` must set up what compose.yaml does, or the two drift apart."""
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up -d" in readme
    command = re.search(r"^docker run .*?^\s*stylebot$", readme, re.MULTILINE | re.DOTALL).group(0)
    words = shlex.split(command.replace("\\\n", " "))
    flags = {(words[i], words[i + 1]) for i in range(len(words) - 1)}
    service = compose_service()
    for key, value in service["environment"].items():
        assert ("-e", f"{key}={value}") in flags
    assert ("--env-file", ".env") in flags and "--init" in words and "--gpus" in words
    assert {("-v", v) for v in service["volumes"]} <= flags
    assert {("-p", p) for p in service["ports"]} <= flags
    stop_timeout = next(int(b) for a, b in flags if a == "--stop-timeout")
    assert stop_timeout == seconds(service["stop_grace_period"])
