"""Write tests/vectors/canon-v1.jsonl: the frozen canon/1 golden vectors.

Run once when canon/1 was defined; never to "fix" a failing vector (a change of canon is
canon/2).  Each rule has positive cases (``same_as``: must equal the reference's canonical
form) and negative cases (``differs_from``: must not).  Invisible characters are written
as code points (``input_cp``) so the file stays readable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sighub.wire import canonicalize

OUT = Path(__file__).with_name("canon-v1.jsonl")
INVISIBLE = [0x200B, 0x200C, 0x200D, 0x2060, 0x00AD, 0xFEFF, 0xFE0F, 0xE0041, 0x180E,
             0x034F, 0x2062, 0x115F]  # fmt: skip
CYRILLIC = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "k": "к"}
GREEK = {"a": "α", "e": "ε", "o": "ο", "i": "ι", "k": "κ", "t": "τ", "v": "ν", "p": "ρ"}


def groups() -> list[tuple[str, str, str, list[str], list[str]]]:
    """(rule, kind, reference, same, different)."""
    g: list[tuple[str, str, str, list[str], list[str]]] = [
        (
            "case-width",
            "keyword",
            "seller",
            ["SELLER", "Seller", "ＳＥＬＬＥＲ", "ｓｅｌｌｅｒ", "SeLlEr"],
            ["sellers", "teller"],
        ),
        (
            "case-width",
            "keyword",
            "menu in bio",
            ["MENU IN BIO", "Menu In Bio", "ｍｅｎｕ ｉｎ ｂｉｏ"],
            ["menu in bios", "menu on bio"],
        ),
        (
            "diacritics",
            "keyword",
            "seller",
            ["sèllér", "śeller", "sêllêr", "ṡeller", "sellër"],
            ["sailor"],
        ),
        (
            "diacritics",
            "keyword",
            "cafe menu",
            ["café menu", "cafe\u0301 menu", "cafè menú"],
            ["cafe menus"],
        ),
        (
            "look-alike-cyrillic",
            "keyword",
            "cheap pack",
            ["сheap pack", "chеap pack", "cheаp pаck", "cheap расk"],
            ["cheap pick"],
        ),
        ("look-alike-greek", "keyword", "kate", ["κate", "kατe", "kaτε"], ["kite"]),
        (
            "leet",
            "keyword",
            "seller",
            ["s3ll3r", "$eller", "5eller", "s3ller", "$3ll3r", "$3ll3rrr"],
            ["s3lling", "5ell"],
        ),
        ("leet", "keyword", "loot", ["l00t", "lo0t", "l0ot"], ["lot1"]),
        ("leet", "keyword", "beta", ["8eta", "b3ta", "be7a", "b3t4"], ["8"]),
        (
            "repeats",
            "keyword",
            "seller",
            ["sellerrrr", "sellllller", "sseelleerr", "seeeller"],
            ["sellers", "sel"],
        ),
        ("repeats", "keyword", "menu", ["menuuu", "mmmenu", "meeenuuu"], ["menus", "mnu"]),
        (
            "spelled-apart",
            "keyword",
            "seller",
            [
                "s e l l e r",
                "s.e.l.l.e.r",
                "s-e-l-l-e-r",
                "s_e_l_l_e_r",
                "s * e * l * l * e * r",
                "S 3 L L 3 R",
                "s  e  l  l  e  r",
            ],
            ["s e l l", "se ll er"],
        ),
        ("spelled-apart", "keyword", "menu", ["m e n u", "m.e.n.u", "m·e·n·u"], ["m e n", "me nu"]),
        ("numbers", "keyword", "14", ["14", "１４", "¹⁴"], ["41", "61", "144", "1 4", "i4"]),
        (
            "numbers",
            "keyword",
            "on chapter 14",
            ["On Chapter 14", "on chapter １４", "ON CHAPTER 14!"],
            ["on chapter 41", "on chapter 61", "on chapter 15"],
        ),
        ("numbers", "keyword", "14yo", ["14YO", "14yoo"], ["41yo", "14 yo", "iayo"]),
        ("numbers", "keyword", "100", ["$100", "100!"], ["1000", "10"]),
        ("words", "keyword", "menu", ["Menu", "MENU!"], ["menus", "menu s", "meny"]),
        (
            "words",
            "keyword",
            "link in bio",
            ["Link in Bio", "link   in bio", "link, in bio"],
            ["link in bios", "links in bio", "link bio"],
        ),
        (
            "hashtag",
            "hashtag",
            "#sellerlife",
            [
                "#SellerLife",
                "#s3ll3rlife",
                "#seller_life",
                "＃sellerlife",
                "sellerlife",
                "#sellerrrlife",
            ],
            ["#sellerlives", "#sellerlife2"],
        ),
        ("hashtag", "hashtag", "#dm4menu", ["#DM4MENU", "#dm4_menu"], ["#dm5menu", "#dmformenu"]),
        ("emoji", "emoji", "🧀🍕", ["🧀 🍕", "🧀\ufe0f🍕", "🧀\u200b🍕"], ["🍕🧀", "🧀", "🧀🍕🍕"]),
        ("emoji-skin-tone", "emoji", "👍", ["👍🏽", "👍🏻", "👍🏿"], ["👎"]),
        ("emoji-presentation", "emoji", "🗺", ["🗺️", "🗺\ufe0e"], ["🗾"]),
        ("emoji-zwj", "emoji", "👨‍👩‍👧", ["👨🏽‍👩‍👧"], ["👨👩👧", "👨‍👩", "👨"]),
        ("emoji-keycap", "emoji", "1️⃣4️⃣", ["1⃣4⃣"], ["4️⃣1️⃣", "1️⃣"]),
        ("emoji-flag", "emoji", "🇺🇸", [], ["🇸🇺", "🇬🇧"]),
        (
            "emoji-tag-flag",
            "emoji",
            "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
            [],
            ["🏴"],
        ),
        (
            "url",
            "url",
            "example-menu.carrd.co",
            [
                "https://example-menu.carrd.co",
                "http://www.example-menu.carrd.co/",
                "HTTPS://EXAMPLE-MENU.CARRD.CO:443/",
                "example-menu.carrd.co/#top",
                "https://example-menu.carrd.co/?utm_source=ig&fbclid=x",
                "hxxps://example-menu.carrd.co",
                "ｅｘａｍｐｌｅ-menu.carrd.co",
            ],
            ["example-menus.carrd.co", "example-menu.carrd.com", "example-menu.carrd.co:8080"],
        ),
        (
            "url",
            "url",
            "menus-demo.carrd.co/prices",
            [
                "https://www.menus-demo.carrd.co/prices/",
                "menus-demo.carrd.co/prices?utm_medium=x&igshid=1",
            ],
            ["menus-demo.carrd.co/Prices", "menus-demo.carrd.co/prices/2"],
        ),
        (
            "url-query",
            "url",
            "files.example/x?id=7&k=2",
            ["files.example/x?k=2&id=7", "files.example/x?id=7&k=2&utm_campaign=z"],
            ["files.example/x?id=8&k=2"],
        ),
        (
            "url-idna",
            "url",
            "bücher.example",
            ["BÜCHER.example", "https://www.bücher.example/"],
            ["bucher.example"],
        ),
        (
            "payment",
            "payment",
            "$examplecash01",
            [
                "$ExampleCash01",
                "cashapp:examplecash01",
                "cash.app/$examplecash01",
                "CASHAPP: $examplecash01",
                "＄examplecash01",
            ],
            ["$examplecash02", "paypal:examplecash01"],
        ),
        (
            "payment",
            "payment",
            "paypal.me/example_pay",
            [
                "PayPal.me/Example_Pay",
                "https://www.paypal.me/example_pay",
                "paypal:example_pay",
                "paypal.com/paypalme/example_pay",
            ],
            ["paypal.me/example_pays", "venmo:example_pay"],
        ),
        (
            "payment",
            "payment",
            "venmo @example-name",
            ["venmo: @Example-Name", "venmo.com/u/example-name", "venmo:example-name"],
            ["venmo @example-names"],
        ),
    ]
    for ch in INVISIBLE:
        g.append(("invisible", "keyword", "seller", ["sel" + chr(ch) + "ler"], []))
    for latin, other in CYRILLIC.items():
        g.append(("look-alike-cyrillic", "keyword", f"x{latin}x", [f"x{other}x"], []))
    for latin, other in GREEK.items():
        g.append(("look-alike-greek", "keyword", f"z{latin}z", [f"z{other}z"], []))
    return g


def _line(rule: str, kind: str, text: str, **extra: str) -> dict[str, object]:
    row: dict[str, object] = {"rule": rule, "kind": kind}
    if any(not ch.isprintable() or ord(ch) in INVISIBLE or 0xFE00 <= ord(ch) <= 0xFE0F
           or ord(ch) >= 0xE0000 for ch in text):  # fmt: skip
        row["input_cp"] = [f"U+{ord(ch):04X}" for ch in text]
    else:
        row["input"] = text
    row["canonical"] = canonicalize(kind, text)
    row.update(extra)
    return row


def main() -> None:
    lines = []
    for rule, kind, ref, same, different in groups():
        lines.append(_line(rule, kind, ref))
        lines += [_line(rule, kind, s, same_as=ref) for s in same]
        lines += [_line(rule, kind, d, differs_from=ref) for d in different]
    OUT.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    print(f"wrote {len(lines)} vectors to {OUT}")


if __name__ == "__main__":
    main()
