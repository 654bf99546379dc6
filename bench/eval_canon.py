"""Score a canon against the adversarial corpus of issue 13 (``tests/corpus/``).

The indicator set is every positive's value canonicalized under the canon scored.  A
positive is recalled when ``extract(text)`` yields a candidate equal (kind, value) to its
own indicator's canonical form; a benign text is a false positive when any of its
candidates equals any indicator's.  Prints recall per category and per kind, overall, and
false positives per 10,000 benign texts.  Targets (recall >= 98% in every category not
marked stretch, at most 1 false positive per 10,000) are enforced for canon/2 only: canon/1
is the baseline that shows what canon/2 must fix.

Run: ``make eval`` or ``.venv/bin/python bench/eval_canon.py [--canon 1|2|all]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("sighub") is None:  # run without an installed package
    sys.path.insert(0, str(ROOT / "src"))

from sighub.client import _canon  # noqa: E402
from sighub.client._errors import CanonError  # noqa: E402

CORPUS: Final = ROOT / "tests" / "corpus"
MIN_RECALL: Final = 0.98
MAX_FP_PER_10K: Final = 1.0


class CanonMissing(Exception):
    """The canon version asked for is not in this build."""


@dataclass(frozen=True, slots=True)
class Canon:
    """``canonicalize`` and ``extract`` bound to one canon version."""

    version: str
    canonicalize: Callable[[str, str], str]
    extract: Callable[[str], list[Any]]


def _accepts_version(fn: Callable[..., Any]) -> bool:
    return "version" in inspect.signature(fn).parameters


def load_canon(n: int) -> Canon:
    """canon/``n`` from ``sighub.client._canon``: ``version=`` is passed only where the
    functions take it (canon/1's original API does not)."""
    version = f"canon/{n}"
    canon_fn, extract_fn = _canon.canonicalize, _canon.extract
    if _accepts_version(canon_fn) and _accepts_version(extract_fn):
        try:
            canon_fn("keyword", "menu", version=version)  # type: ignore[call-arg]
        except CanonError as exc:
            raise CanonMissing(f"{version}: refused by sighub.client._canon ({exc})") from exc
        return Canon(
            version,
            lambda kind, value: canon_fn(kind, value, version=version),  # type: ignore[call-arg]
            lambda text: extract_fn(text, version=version),  # type: ignore[call-arg]
        )
    if n == 1:
        return Canon(version, canon_fn, extract_fn)
    raise CanonMissing(
        f"{version} is not in this build: sighub.client._canon.canonicalize and extract take "
        "no version= argument (canon/2 lands with issue 13, items 1-3); only canon/1 can be "
        "scored"
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Tally:
    total: int = 0
    hits: int = 0

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else 0.0


@dataclass
class Result:
    version: str
    by_category: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_kind: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    stretch: set[str] = field(default_factory=set)
    overall: Tally = field(default_factory=Tally)
    core: Tally = field(default_factory=Tally)  # categories not marked stretch
    refused: int = 0  # positives whose value the canon refused (each also a miss)
    misses: list[tuple[str, str, str]] = field(default_factory=list)
    benign: int = 0
    false_positives: list[tuple[str, str, str]] = field(default_factory=list)
    fp_by_source: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))

    @property
    def fp_per_10k(self) -> float:
        return 10_000 * len(self.false_positives) / self.benign if self.benign else 0.0

    def failures(self) -> list[str]:
        """The targets missed, one line each."""
        out = [
            f"recall {t.rate:.1%} in {cat}; expected >= {MIN_RECALL:.0%}"
            for cat, t in sorted(self.by_category.items())
            if cat not in self.stretch and t.rate < MIN_RECALL
        ]
        if self.fp_per_10k > MAX_FP_PER_10K:
            out.append(
                f"{self.fp_per_10k:.1f} false positives per 10,000 benign texts; "
                f"expected <= {MAX_FP_PER_10K:g}"
            )
        return out


def evaluate(
    canon: Canon, positives: Sequence[dict[str, Any]], benign: Sequence[dict[str, Any]]
) -> Result:
    result = Result(canon.version)
    wanted: list[tuple[str, str] | None] = []
    for p in positives:
        try:
            wanted.append((p["kind"], canon.canonicalize(p["kind"], p["value"])))
        except CanonError:
            wanted.append(None)
            result.refused += 1
    indicators = {w for w in wanted if w is not None}
    for p, want in zip(positives, wanted, strict=True):
        found = want is not None and any(
            (str(c.kind), c.value) == want for c in canon.extract(p["text"])
        )
        tallies = [result.by_category[p["category"]], result.by_kind[p["kind"]], result.overall]
        if p["stretch"]:
            result.stretch.add(p["category"])
        else:
            tallies.append(result.core)
        for t in tallies:
            t.total += 1
            t.hits += found
        if not found:
            result.misses.append((p["category"], p["value"], p["text"]))
    for b in benign:
        result.benign += 1
        tally = result.fp_by_source[b["source"]]
        tally.total += 1
        hit = next(
            ((str(c.kind), c.value) for c in canon.extract(b["text"])
             if (str(c.kind), c.value) in indicators),
            None,
        )  # fmt: skip
        if hit is not None:
            tally.hits += 1
            result.false_positives.append((b["source"], f"{hit[0]}:{hit[1]}", b["text"]))
    return result


def report(result: Result, show: int) -> str:
    lines = [f"== {result.version}: {result.overall.total} positives, {result.benign} benign"]
    lines.append(f"{'category':<28} {'n':>5} {'recall':>8}")
    for cat, t in sorted(result.by_category.items()):
        mark = " (stretch)" if cat in result.stretch else ""
        lines.append(f"{cat:<28} {t.total:>5} {t.rate:>8.1%}{mark}")
    lines.append(f"{'kind':<28} {'n':>5} {'recall':>8}")
    for kind, t in sorted(result.by_kind.items()):
        lines.append(f"{kind:<28} {t.total:>5} {t.rate:>8.1%}")
    lines.append(f"{'overall':<28} {result.overall.total:>5} {result.overall.rate:>8.1%}")
    lines.append(f"{'overall, not stretch':<28} {result.core.total:>5} {result.core.rate:>8.1%}")
    if result.refused:
        lines.append(f"values refused by {result.version}: {result.refused} (counted as misses)")
    sources = ", ".join(
        f"{src} {t.hits}/{t.total}" for src, t in sorted(result.fp_by_source.items())
    )
    lines.append(
        f"false positives: {len(result.false_positives)} of {result.benign} "
        f"({result.fp_per_10k:.1f} per 10,000; {sources})"
    )
    for cat, value, text in result.misses[:show]:
        lines.append(f"  miss [{cat}] {value!r} in {text!r}")
    for src, hit, text in result.false_positives[:show]:
        lines.append(f"  false positive [{src}] {hit!r} in {text!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--canon",
        choices=("1", "2", "all"),
        default="all",
        help="canon version to score; all: canon/1, then canon/2 if present",
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="folder of the corpus")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="score every k-th text only, k chosen to keep about N (0: all)",
    )
    parser.add_argument("--show", type=int, default=0, help="print up to N misses and FPs")
    args = parser.parse_args(argv)
    positives = read_jsonl(args.corpus / "positives.jsonl")
    benign = read_jsonl(args.corpus / "benign.jsonl")
    if args.sample:
        positives = positives[:: max(1, len(positives) // args.sample)]
        benign = benign[:: max(1, len(benign) // args.sample)]
    versions = [1, 2] if args.canon == "all" else [int(args.canon)]
    status = 0
    for n in versions:
        try:
            canon = load_canon(n)
        except CanonMissing as exc:
            if args.canon == "all":
                print(f"== canon/{n}: not scored; {exc}")
                continue
            print(f"error: {exc}", file=sys.stderr)
            return 2
        result = evaluate(canon, positives, benign)
        print(report(result, args.show))
        if n >= 2:  # canon/1 is the baseline: its figures are shown, never enforced
            for failure in result.failures():
                print(f"TARGET MISSED ({canon.version}): {failure}")
                status = 1
            if not result.failures():
                print(f"{canon.version}: every target met")
    return status


if __name__ == "__main__":
    sys.exit(main())
