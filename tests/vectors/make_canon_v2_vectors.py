"""Write tests/vectors/canon-v2.jsonl: the canon/2 golden vectors.

Generated, like canon-v1.jsonl, and then frozen: a failing vector is a canon/3 question,
never a regeneration.  Look-alikes and marks are taken from the shipped table (itself from
Unicode's data), not hand-picked.  Rows are either ``canonicalize`` vectors (``kind``,
``input``/``input_cp``, ``canonical`` or ``error``, optional ``same_as``/``differs_from``)
or ``extract`` vectors (``text``, ``present`` and/or ``absent`` lists of kind:value).
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.vectors
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sighub.client._canon import canonicalize, extract
from sighub.client._canon._v2._table import FOLD
from sighub.client._errors import CanonError
from tests.vectors._codepoints import encoded, write_jsonl

OUT = Path(__file__).with_name("canon-v2.jsonl")
V = "canon/2"


def canon_row(rule: str, kind: str, text: str, **extra: str) -> dict[str, object]:
    row: dict[str, object] = {"rule": rule, "kind": kind, **encoded(text, "input")}
    try:
        row["canonical"] = canonicalize(kind, text, V)
    except CanonError:
        row["error"] = True
    row.update(extra)
    ref = extra.get("same_as") or extra.get("differs_from")
    if ref and ("same_as" in extra) != (row.get("canonical") == canonicalize(kind, ref, V)):
        raise SystemExit(f"{rule}: {text!r} -> {row.get('canonical')!r} vs {ref!r}")
    return row


def extract_row(rule: str, text: str, present: list[str], absent: list[str]) -> dict[str, object]:
    found = {f"{c.kind.value}:{c.value}" for c in extract(text, V)}
    missing = [p for p in present if p not in found]
    wrong = [a for a in absent if a in found]
    if missing or wrong:
        raise SystemExit(f"{rule}: {text!r}: missing {missing}, unexpected {wrong}")
    return {"rule": rule, "text": text, "present": present, "absent": absent}


def look_alikes() -> list[dict[str, object]]:
    """Every non-ASCII character the table folds to one ASCII letter or digit."""
    rows = []
    for cp, target in sorted(FOLD.items()):
        if cp >= 0x80 and len(target) == 1 and target.isascii() and target.isalnum():
            ch = chr(cp)
            if unicodedata.category(ch)[0] in "LNS":
                rows.append(canon_row("look-alike", "keyword", f"x{ch}x", same_as=f"x{target}x"))
    return rows


def marks() -> list[dict[str, object]]:
    """Every 8th combining mark (Mn, Me) of the table, inside a word."""
    found = [cp for cp, s in sorted(FOLD.items())
             if s == "" and unicodedata.category(chr(cp)) in ("Mn", "Me")]  # fmt: skip
    return [canon_row("marks", "keyword", f"se{chr(cp)}ller", same_as="seller")
            for cp in found[::8]]  # fmt: skip


def groups() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    same = {
        "ambiguous-leet": ("seller", ["se11er", "seIIer", "se||er", "se!!er", "SE11ER", "5e11er"]),
        "ambiguous-leet-i": ("menu in bio", ["m3nu 1n b10", "menu 1n bio", "MENU IN BIO"]),
        "trailing-punctuation": ("seller", ["seller!!", "seller!", "seller|", "$eller!"]),
        "leading-digit": ("on chapter 14", ["0n ch4pt3r 14", "0n chapter 14"]),
        "leading-digit-dm": ("dm to buy", ["dm t0 buy", "DM T0 BUY"]),
        "trailing-leet": ("pizza", ["pizz@", "p1zz@", "PIZZA"]),
        "spelled-pipe": ("seller", ["s|e|l|l|e|r", "s e l l e r", "s.e.l.l.e.r"]),
        "look-alike-named": ("menu", ["ΜΕΝU", "ᴍᴇɴᴜ", "MΕNU"]),
        "look-alike-named-cheese": ("cheese", ["CΗΕΕSE", "ϲheese", "ᴄʜᴇᴇꜱᴇ", "cheeꜱe"]),
        "look-alike-named-seller": ("seller", ["ꜱeller", "Տeller", "Ꮪeller", "seℓℓer", "seӀӀer"]),
    }
    for rule, (ref, variants) in same.items():
        rows.append(canon_row(rule, "keyword", ref))
        rows += [canon_row(rule, "keyword", v, same_as=ref) for v in variants]
    differs = {
        "numbers": ("14", ["l4", "140", "1"]),
        "units": ("10pm", ["10am", "1opm"]),
        "words": ("seller", ["sellers", "teller", "sailor"]),
    }
    for rule, (ref, variants) in differs.items():
        rows.append(canon_row(rule, "keyword", ref))
        rows += [canon_row(rule, "keyword", v, differs_from=ref) for v in variants]
    for text in ["carry on. chapter", "on, chapter", "on\nchapter", "a; b", "#a #b", "wow! now"]:
        rows.append(canon_row("phrase-break", "keyword", text))
    urls = {
        "carrd.co/prices": ["carrd[.]co/prices", "carrd(.)co/prices", "carrd[dot]co/prices",
                            "carrd dot co/prices", "hxxps://carrd.co/prices", "carrd。co/prices",
                            "carrd．co/prices", "carrd｡co/prices", "carrd.co/%70rices",
                            "car\u200brd.co/prices", "*carrd.co/prices*", "<carrd.co/prices>",
                            "HXXP://CARRD[.]CO/prices"],
        "t.me/+abc": ["*t.me/+abc*", "_t.me/+abc_", "t[.]me/+abc", "hxxps://t.me/+abc"],
        "xn--fa-hia.de": ["faß.de", "FAß.DE", "https://faß.de/"],
    }  # fmt: skip
    for ref, variants in urls.items():
        rows.append(canon_row("url", "url", ref))
        rows += [canon_row("url", "url", v, same_as=ref) for v in variants]
    rows.append(canon_row("url", "url", "carrd.co/%2Fprices", differs_from="carrd.co/prices"))
    pays = {
        "paypal.me/example_pay": ["paypal[.]me/example_pay", "PayPal(.)me/Example_Pay",
                                  "hxxps://paypal[dot]me/example_pay", "paypal。me/example_pay"],
        "cash.app/$s3ller": ["cash[.]app/$s3ller", "cash(.)app/$S3LLER", "$s3ller"],
    }  # fmt: skip
    for ref, variants in pays.items():
        rows.append(canon_row("payment", "payment", ref))
        rows += [canon_row("payment", "payment", v, same_as=ref) for v in variants]
    emoji = {"🧀🍕": ["🧀\u00a0🍕", "🧀\n🍕", "🧀 \u3000 🍕", "🧀\u200b🍕"]}
    for ref, variants in emoji.items():
        rows.append(canon_row("emoji", "emoji", ref))
        rows += [canon_row("emoji", "emoji", v, same_as=ref) for v in variants]
    for tag in ["#tag!", "#TAG", "#t4g", "＃tag"]:
        rows.append(canon_row("hashtag", "hashtag", tag, same_as="#tag"))
    rows += [
        extract_row("phrase-break", "carry on. Chapter 14 is next",
                    ["keyword:chapter 14", "keyword:cary on"], ["keyword:on chapter 14"]),
        extract_row("phrase-break", "menu, in bio", ["keyword:ln blo"], ["keyword:menu ln"]),
        extract_row("phrase-break", "menu\nin bio", [], ["keyword:menu ln"]),
        extract_row("phrase-break", "seller! buy now", ["keyword:buy now"], ["keyword:seler buy"]),
        extract_row("phrase-break", "#menu #inbio", ["hashtag:menu", "hashtag:lnblo"],
                    ["keyword:menu lnblo"]),
        extract_row("phrase-break", "s.e.l.l.e.r here", ["keyword:seler here"], []),
        extract_row("phrase-break", "#menu\nprices in bio", ["keyword:prlces ln blo"],
                    ["keyword:menu prlces"]),
        extract_row("hashtag-adjacent", "#menu#inbio", ["hashtag:menu", "hashtag:lnblo"], []),
        extract_row("hashtag-adjacent", "#a#b#c", ["hashtag:a", "hashtag:b", "hashtag:c"], []),
        extract_row("spelled-emoji", "s🧀e🧀l🧀l🧀e🧀r", ["keyword:seler"], []),
        extract_row("spelled-pipe", "buy from s|e|l|l|e|r", ["keyword:from seler"], []),
        extract_row("emoji-gap", "🧀\u00a0🍕 tonight", ["emoji:🧀🍕"], []),
        extract_row("emoji-gap", "🧀\n🍕", ["emoji:🧀🍕"], []),
        extract_row("url", "see carrd[.]co/prices now", ["url:carrd.co/prices"], []),
        extract_row("url", "see carrd[\u3002]co/prices now", ["url:carrd.co/prices"], []),
        extract_row("url", "at **t.me/+abc**", ["url:t.me/+abc"], []),
        extract_row("url", "link: <https://faß.de/x>", ["url:xn--fa-hia.de/x"], []),
        extract_row("payment", "pay paypal[.]me/s3ller", ["payment:paypal:s3ller"], []),
        extract_row("payment", "pay cash[.]app/$s3ller", ["payment:cashapp:s3ller"], []),
    ]  # fmt: skip
    return rows


def main() -> None:
    lines = groups() + look_alikes() + marks()
    write_jsonl(OUT, lines)


if __name__ == "__main__":
    main()
