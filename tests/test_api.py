"""The public API: the two export lists are pinned, every public object is documented, and
nothing imports the old top-level ``client`` or ``hub`` packages."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import sighub
import sighub.client
import sighub.wire

ROOT = Path(__file__).resolve().parents[1]

SIGHUB = [
    "Following",
    "Form",
    "Hit",
    "HubRejected",
    "HubUnreachable",
    "Indicator",
    "InputFileError",
    "IntegrityAlarm",
    "JsonlSink",
    "KeyFileError",
    "Kind",
    "LiveMatcher",
    "Match",
    "Matcher",
    "MatcherSink",
    "Member",
    "ModelError",
    "PublishResult",
    "Publisher",
    "SighubError",
    "Sink",
    "StoredIndicator",
    "SyncReport",
    "TextTooLong",
    "Tlp",
]
WIRE = [
    "BLIND_SCHEME",
    "CANON_VERSION",
    "BlindedText",
    "Blinder",
    "Bundle",
    "Candidate",
    "CanonError",
    "CollabKey",
    "Envelope",
    "EnvelopeError",
    "PatternRejected",
    "StixError",
    "UnknownKeyError",
    "blind",
    "build_bundle",
    "canonicalize",
    "decode_payload",
    "extract",
    "gate",
    "key_id",
    "now_ms",
    "open_envelope",
    "parse_bundle",
    "revoke",
    "seal",
]


def test_export_lists_are_pinned() -> None:
    assert sorted(sighub.__all__) == sorted(SIGHUB)
    assert len(sighub.__all__) <= 25
    assert sorted(sighub.wire.__all__) == sorted(WIRE)
    assert sighub.client.__all__ == []  # the implementation; nothing public of its own


def test_every_exported_name_resolves_and_the_errors_share_one_base() -> None:
    for name in SIGHUB:
        assert getattr(sighub, name) is not None, name
    for name in WIRE:
        assert getattr(sighub.wire, name) is not None, name
    errors = [getattr(sighub, n) for n in SIGHUB if n.endswith("Error") or n.startswith("Hub")]
    errors += [getattr(sighub.wire, n) for n in WIRE if n.endswith(("Error", "Rejected"))]
    for error in errors:
        assert issubclass(error, sighub.SighubError), error


def test_import_sighub_stays_light() -> None:
    """``import sighub`` (and ``sighub --version``) loads no gRPC, RE2 or SQLite code."""
    code = "import sys, sighub; print(sorted(m for m in ('grpc', 're2', 'sqlite3') if m in sys.modules))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _public_members(obj: type) -> list[tuple[str, object]]:
    found = []
    for name, raw in vars(obj).items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        value = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
        value = value.fget if isinstance(value, property) else value
        if inspect.isfunction(value):
            found.append((name, value))
    return found


def _documented(obj: object) -> bool:
    """A docstring of its own: not the signature a dataclass writes, not an inherited one."""
    doc = getattr(obj, "__doc__", None) or ""
    name = getattr(obj, "__name__", "")
    inherited = inspect.isclass(obj) and any(
        doc is getattr(b, "__doc__", None) for b in obj.__mro__[1:]
    )
    return bool(doc.strip()) and not doc.startswith(f"{name}(") and not inherited


def test_every_public_class_function_and_method_has_a_docstring() -> None:
    missing = []
    for module, names in ((sighub, SIGHUB), (sighub.wire, WIRE)):
        for name in names:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants
            if not _documented(obj):
                missing.append(f"{module.__name__}.{name}")
            if inspect.isclass(obj):
                for attr, fn in _public_members(obj):
                    if attr == "__init__":
                        continue  # the class docstring says how to build one
                    if not (fn.__doc__ or "").strip():
                        missing.append(f"{module.__name__}.{name}.{attr}")
    assert missing == []


def test_the_modules_say_what_they_are_for() -> None:
    for module in (sighub, sighub.wire, sighub.client):
        assert module.__doc__ and len(module.__doc__) > 200, module.__name__


def test_nothing_imports_the_old_top_level_packages() -> None:
    old = re.compile(r"^\s*(from|import)\s+(client|hub)\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("src", "tests", "bench", "examples", "proto", "deploy")
        for path in sorted((ROOT / folder).rglob("*.py"))
        # not a dot-folder's: `make bench-peer` installs a peer server's venv in bench/.peer
        if not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
        and old.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
