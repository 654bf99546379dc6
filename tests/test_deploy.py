"""deploy/: the Dockerfile and the systemd units stay in step with the CLI, parse, pass
`systemd-analyze verify` where it exists, and the image builds where docker runs."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sighub.hub._cli import build_parser
from tests.conftest import SIGHUB

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = {
    "sighub-hub.service": ("hub", "serve"),
    "sighub-sync@.service": ("sync",),
}
INSTANCE = "platform-a"  # what %i stands for in the template's tests
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateTmp": "yes",
    "Restart": "on-failure",
    "KillSignal": "SIGTERM",
}


def read_unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=True, interpolation=None)  # a repeated key fails
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string((DEPLOY / "systemd" / name).read_text())
    return unit


def exec_argv(unit: configparser.ConfigParser) -> list[str]:
    return shlex.split(unit["Service"]["ExecStart"].replace("%i", INSTANCE))


@pytest.mark.parametrize("name", sorted(UNITS))
def test_unit_parses_with_the_required_keys(name: str) -> None:
    unit = read_unit(name)
    assert unit["Unit"]["Description"] and unit["Install"]["WantedBy"] == "multi-user.target"
    service = unit["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == value, key
    assert service.get("DynamicUser") == "yes" or service.get("User"), "runs as root"
    assert {"2", "3", "5"} <= set(service["RestartPreventExitStatus"].split())
    argv = exec_argv(unit)
    assert argv[0].startswith("/") and argv[0].endswith("/sighub")
    args = build_parser().parse_args(argv[1:])  # the unit's command line is a valid one
    assert (args.command, *([args.action] if args.command == "hub" else [])) == UNITS[name]
    # The daemon writes only its data directory: exactly the one it serves.
    assert service["ReadWritePaths"].replace("%i", INSTANCE) == args.data


def test_the_sync_unit_follows_and_the_hub_unit_has_a_loopback_health_port() -> None:
    sync = build_parser().parse_args(exec_argv(read_unit("sighub-sync@.service"))[1:])
    assert sync.follow and sync.data.endswith(f"/{INSTANCE}")
    serve = build_parser().parse_args(exec_argv(read_unit("sighub-hub.service"))[1:])
    assert serve.health_listen.startswith("127.0.0.1:") and not serve.insecure


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    """Verified with the binary pointed at this checkout's `sighub` (verify checks that
    ExecStart is executable); every warning about our units fails the test."""
    sighub = Path(sys.executable).with_name("sighub")
    if not sighub.exists():
        pytest.skip("no sighub console script next to the interpreter")
    paths = []
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text()
        target = tmp_path / name.replace("@.", f"@{INSTANCE}.")
        target.write_text(re.sub(r"/opt/sighub/bin/sighub", str(sighub), text))
        paths.append(str(target))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *paths],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ours = [line for line in done.stderr.splitlines() if str(tmp_path) in line or "sighub" in line]
    assert done.returncode == 0 and not ours, done.stderr


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    rows = [line.strip() for line in text.splitlines()]
    return [
        (row.split(None, 1)[0].upper(), row.split(None, 1)[1])
        for row in rows
        if row and not row.startswith("#")
    ]


def instruction(name: str) -> list[str]:
    return [args for op, args in dockerfile() if op == name]


def test_dockerfile_runs_unprivileged_with_data_on_a_volume() -> None:
    assert all(base.startswith("python:3.11-slim") for base in instruction("FROM"))
    user = instruction("USER")[-1].split(":")[0]
    assert user not in ("root", "0")
    assert instruction("VOLUME") == ['["/data"]'] and instruction("EXPOSE") == ["7443"]
    env = " ".join(instruction("ENV"))
    assert "HOME=/tmp" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    entry = shlex.split(instruction("ENTRYPOINT")[0].strip("[]").replace(",", " "))
    cmd = shlex.split(instruction("CMD")[-1].strip("[]").replace(",", " "))
    assert entry == ["sighub"]
    args = build_parser().parse_args(cmd)
    assert (args.command, args.action, args.data) == ("hub", "serve", "/data")
    assert args.health_listen.startswith("127.0.0.1:")
    # The health check asks exactly the port the command serves health on.
    assert f"'{args.health_listen}'" in instruction("HEALTHCHECK")[0]


def healthcheck_code(address: str) -> str:
    """The HEALTHCHECK's python one-liner, aimed at ``address``."""
    check = instruction("HEALTHCHECK")[0]
    code = re.search(r'"-c", "(.*)"\]$', check)
    assert code is not None, check
    return re.sub(r"'127\.0\.0\.1:\d+'", f"'{address}'", code.group(1))


def test_the_healthcheck_passes_on_a_serving_hub_and_fails_without_one(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    init = subprocess.run(
        [*SIGHUB, "hub", "init", "--data", str(data)], capture_output=True, check=False
    )
    assert init.returncode == 0, init.stderr
    argv = ["hub", "serve", "--data", str(data), "--listen", "127.0.0.1:0"]
    hub = subprocess.Popen(
        [*SIGHUB, *argv, "--health-listen", "127.0.0.1:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert hub.stdout is not None
        lines = [hub.stdout.readline() for _ in range(2)]
        health = next(x for x in lines if " health on " in x).split(" health on ")[1].split()[0]
        probe = [sys.executable, "-c", healthcheck_code(health)]
        ok = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
        assert ok.returncode == 0, ok.stderr
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(timeout=30) == 0
    down = subprocess.run(probe, capture_output=True, text=True, timeout=30, check=False)
    assert down.returncode != 0


def docker_usable() -> bool:
    if shutil.which("docker") is None:
        return False
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False)
    return info.returncode == 0


@pytest.mark.skipif(not docker_usable(), reason="docker is not available or not usable here")
def test_the_image_builds_and_runs_on_a_read_only_root() -> None:
    tag = "sighub-test:deploy"
    build = subprocess.run(
        ["docker", "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    user = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.User}}", tag],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert user.split(":")[0] not in ("", "root", "0")
    # On a read-only root with an anonymous /data volume, `hub init` writes only there.
    run = ["docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp", tag]
    init = subprocess.run(
        [*run, "hub", "init", "--data", "/data/hub", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert '"data": "/data/hub"' in init.stdout
