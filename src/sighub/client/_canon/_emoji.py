"""canon/1 for emoji: clusters kept whole, skin tones and presentation selectors dropped."""

from __future__ import annotations

import re
from typing import Final

from sighub.client._canon._table import PICTO, REGIONAL, SKIN, one_of
from sighub.client._errors import CanonError

MAX_CLUSTERS: Final = 4
_VS: Final = "\ufe0e\ufe0f"
_PART: Final = f"{one_of(PICTO)}[{_VS}]?[{SKIN}]?"
# Every emoji starts with a keycap base, a regional indicator, U+1F3F4 or a pictograph:
# the lookahead (a small class of wide ranges) skips everything else cheaply.
_START: Final = "(?=[0-9#*\u00a9\u00ae\u203c-\u3299\U0001f000-\U0001faff])"
CLUSTER_RE: Final = re.compile(
    _START + "(?:"
    f"[{REGIONAL}]{{2}}"  # a flag: two regional indicators
    f"|[0-9#*][{_VS}]?\u20e3"  # a keycap
    "|\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f"  # a subdivision flag (tag sequence)
    f"|{_PART}(?:\u200d{_PART})*"  # a pictograph or a ZWJ sequence of them
    ")"
)
# Texts without any of these hold no emoji: one scan of a small class decides.
_HINT_RE: Final = re.compile("[\u00a9\u00ae\u203c-\u3299\u20e3\U0001f000-\U0001faff]")
# What may stand between the emoji of one code: spaces and invisible characters.
_GAP_RE: Final = re.compile("[ \t\u200b\u200c\u2060\ufeff\ufe0e\ufe0f]*")
_DROP: Final = str.maketrans(dict.fromkeys([0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)]))


def _canon_cluster(cluster: str) -> str:
    return cluster.translate(_DROP)


_Cluster = tuple[str, int, int]
# The clusters of the last text scanned: a matcher with both canons in force extracts the
# same text twice (the canons differ only in the gaps a run may span).  One slot, replaced
# whole, so threads that scan see either entry complete; ``is`` is safe as the slot keeps
# its text alive.
_last: list[tuple[str, tuple[_Cluster, ...]]] = [("", ())]


def _clusters(text: str) -> tuple[_Cluster, ...]:
    """(canonical value, start, end) of each emoji cluster of ``text``."""
    last = _last[0]
    if last[0] is text:
        return last[1]
    found: tuple[_Cluster, ...] = ()
    hint = _HINT_RE.search(text)
    if hint is not None:
        # A keycap starts one character before its U+20E3; anything else at the hint.
        start = hint.start() - 2 if hint.group() == "\u20e3" else hint.start()
        found = tuple(
            (_canon_cluster(m.group()), m.start(), m.end())
            for m in CLUSTER_RE.finditer(text, max(0, start))
        )
    _last[0] = (text, found)
    return found


def runs(text: str, gap: re.Pattern[str] = _GAP_RE) -> list[list[tuple[str, int, int]]]:
    """Runs of adjacent emoji clusters (canonical value, start, end) in ``text``: ``gap``
    matches what may stand between two emoji of one run."""
    out: list[list[tuple[str, int, int]]] = []
    last_end = -1
    for item in _clusters(text):
        if out and gap.fullmatch(text, last_end, item[1]):
            out[-1].append(item)
        else:
            out.append([item])
        last_end = item[2]
    return out


def candidates(
    text: str, out: list[tuple[str, str, int, int]], gap: re.Pattern[str] = _GAP_RE
) -> None:
    """Every sub-run of 1..MAX_CLUSTERS clusters, as ("emoji", value, start, end)."""
    for run in runs(text, gap):
        for i in range(len(run)):
            value = ""
            for j in range(i, min(i + MAX_CLUSTERS, len(run))):
                value += run[j][0]
                out.append(("emoji", value, run[i][1], run[j][2]))


def canonicalize(value: str, gap: re.Pattern[str] = _GAP_RE) -> str:
    found = runs(value, gap)
    pos = 0
    for m in CLUSTER_RE.finditer(value):
        if not gap.fullmatch(value, pos, m.start()):
            bad = value[pos : m.start()].strip()
            raise CanonError(f"emoji {value!r}: {bad!r} is not an emoji; expected emoji only")
        pos = m.end()
    if not gap.fullmatch(value, pos, len(value)):
        bad = value[pos:].strip()
        raise CanonError(f"emoji {value!r}: {bad!r} is not an emoji; expected emoji only")
    if not found:
        raise CanonError(f"emoji {value!r}: expected 1-{MAX_CLUSTERS} emoji")
    clusters = [c for run in found for c in run]
    if len(clusters) > MAX_CLUSTERS:
        raise CanonError(f"emoji {value!r}: {len(clusters)} emoji; expected at most {MAX_CLUSTERS}")
    return "".join(c[0] for c in clusters)
