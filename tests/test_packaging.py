"""The distribution: one top-level package, ``sighub``, and ``sighub --version``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from sighub.hub._cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built offline from a copy of what the sdist holds (the checkout stays
    clean: no build/ folder, no stale files from an earlier build)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=junk)
    out = tmp / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("sighub-*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def test_the_wheel_installs_exactly_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    dist_info = f"sighub-{version('sighub')}.dist-info"
    assert {n.split("/")[0] for n in names} == {"sighub", dist_info}
    assert wheel.read(f"{dist_info}/top_level.txt").decode().split() == ["sighub"]
    for data in (
        "sighub/__init__.py",
        "sighub/py.typed",
        "sighub/client/py.typed",
        "sighub/client/_canon/fold-v1.json",
        "sighub/client/_proto/sync_pb2.py",
        "sighub/client/_worker_main.py",
        "sighub/hub/py.typed",
        "sighub/hub/_cli.py",
    ):
        assert data in names, data
    entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "sighub = sighub.hub._cli:main" in entry_points


def test_version_is_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    import sighub

    assert sighub.__version__ == version("sighub")
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"sighub {version('sighub')}\n"


def test_the_console_script_prints_the_version() -> None:
    script = Path(sys.executable).with_name("sighub")
    if not script.exists():
        pytest.skip("no sighub console script next to the interpreter")
    done = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"sighub {version('sighub')}\n"), done.stderr
