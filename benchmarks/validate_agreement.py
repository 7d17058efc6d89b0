"""How often ``folkrnn validate`` agrees with ``abc2midi -c`` on real tunes and on broken ones.

The set: a fixed random sample of the tunes of music21's five shipped collections (as written,
not normalised), and, made from each sampled tune that abc2midi passes with no bar or repeat
message, four broken variants:

- ``overfull``: one note in a bar in the middle of the tune made twice as long;
- ``underfull``: one note in the middle made half as long;
- ``unbalanced-repeat``: a ``:|`` that closes a ``|:`` made a plain bar line, or (with no
  ``|:``) a plain bar line after the last repeat made a ``|:`` that nothing closes;
- ``misplaced-ending``: endings swapped (``|2`` first), the ``:|`` before ending 2 dropped,
  ending 2 given to a repeat with no ending 1, or endings put where there is no repeat at all.

abc2midi "flags" a tune when ``-c`` prints a bar-length message ("Bar n has x time units ...")
or a repeat or ending message ("Assuming repeat", "Missing :| at end of tune", "found another
|: after a |:", "Need || |: :| or :: to mark end of variant ending", ...). We flag a tune when
the validator reports an error. The two figures:

- of the broken variants abc2midi flags, the share we flag (the issue asks >= 95%);
- of the real tunes abc2midi passes, the share we pass (>= 95%).

Every disagreement is printed with abc2midi's messages and ours; docs/validate.md explains them.
The last line is JSON.

    .venv/bin/python benchmarks/validate_agreement.py --sample 2000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from folkrnn.abc import lex, read_text, split_tunebook  # noqa: E402
from folkrnn.abc.lexer import BAR, BROKEN, CHORD_END, CHORD_START, ENDING, GRACE_END, GRACE_START, NOTE, TUPLET  # noqa: E402
from folkrnn.errors import FolkError  # noqa: E402
from folkrnn.validate import validate_tune  # noqa: E402

KINDS = ("overfull", "underfull", "unbalanced-repeat", "misplaced-ending")
_FLAG = re.compile(r"time units|repeat|variant ending|\|:|:\||\[1 or like")
_NOT_FLAG = re.compile(r"I: key|Potentially ambiguous line")
_NOTE = re.compile(r"(\^\^|\^|__|_|=)?[A-Ga-g][,']*(\d*)(/*)(\d*)")


def corpus_tunes():
    """Every tune of music21's five collections, as written (``TuneText`` with a relative file)."""
    from folkrnn.corpus import DEFAULT_COLLECTIONS, music21_corpus_dir

    root = music21_corpus_dir()
    tunes = []
    for collection in DEFAULT_COLLECTIONS:
        for path in sorted((root / collection.name).rglob("*.abc")):
            tunes.extend(split_tunebook(read_text(path), str(path.relative_to(root))))
    return tunes


def abc2midi_flags(messages: list[str]) -> list[str]:
    """abc2midi ``-c`` messages about bar lengths, repeats and endings (the rest are left out)."""
    return [m for m in messages if _FLAG.search(m) and not _NOT_FLAG.search(m)]


def _body_start(text: str, body_line: int) -> int:
    """Offset in ``text`` of the first character of line ``body_line`` (1-based)."""
    offset = 0
    for _ in range(body_line - 1):
        offset = text.index("\n", offset) + 1
    return offset


def _length_text(value: Fraction) -> str:
    if value == 1:
        return ""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator if value.numerator != 1 else ''}/{value.denominator}"


def _plain_notes(items: list[tuple]) -> list[int]:
    """Indices of notes outside chords, grace groups and tuplets, with no broken rhythm either side."""
    out, in_chord, in_grace, tuplet_left = [], False, False, 0
    for index, item in enumerate(items):
        kind = item[0]
        if kind is CHORD_START:
            in_chord = True
        elif kind is CHORD_END:
            in_chord = False
            tuplet_left = max(tuplet_left - 1, 0)
        elif kind is GRACE_START:
            in_grace = True
        elif kind is GRACE_END:
            in_grace = False
        elif kind is TUPLET:
            tuplet_left = item[4] or item[2]
        elif kind is NOTE and not in_grace and not in_chord:
            if tuplet_left:
                tuplet_left -= 1
                continue
            neighbours = [items[k][0] for k in (index - 1, index + 1) if 0 <= k < len(items)]
            if BROKEN not in neighbours and "-" not in neighbours:
                out.append(index)
    return out


def _replace(text: str, start: int, old: str, new: str) -> str:
    assert text[start:start + len(old)] == old, (text[start:start + 20], old)
    return text[:start] + new + text[start + len(old):]


def variant(text: str, kind: str, rng: random.Random) -> str | None:
    """A broken copy of a tune's text, or None when this kind cannot be made from it."""
    if "=20" in text or "=\n" in text:
        return None  # quoted-printable debris shifts the lexer's offsets
    try:
        lexed = lex(text)
    except FolkError:
        return None
    items, base = lexed.items, _body_start(text, lexed.body_line)
    bars = [i for i, item in enumerate(items) if item[0] is BAR]
    if kind in ("overfull", "underfull"):
        if len(bars) < 4:
            return None
        # a note between the second bar line and the second to last
        low, high = bars[1], bars[-2]
        notes = [i for i in _plain_notes(items) if low < i < high]
        if not notes:
            return None
        index = rng.choice(notes)
        _, at, _, _, _, n, d = items[index]
        match = _NOTE.match(text, base + at)
        length = Fraction(n or 1, d) * (2 if kind == "overfull" else Fraction(1, 2))
        head = match.group(0)[:len(match.group(0)) - len("".join(g or "" for g in match.groups()[1:]))]
        return text[:match.start()] + head + _length_text(length) + text[match.end():]
    raws = {i: items[i][4] for i in bars}
    opens = [i for i in bars if items[i][2] in ("|:", "::")]
    closes = [i for i in bars if items[i][2] in (":|", "::")]
    endings = [i for i, item in enumerate(items) if (item[0] is BAR and item[3]) or item[0] is ENDING]
    if kind == "unbalanced-repeat":
        closing = [c for c in closes if any(o < c for o in opens)]
        if closing:
            index = rng.choice(closing)
            raw = raws[index]
            new = "|:" if items[index][2] == "::" else "|" + ("]" if raw.endswith("]") else "")
            return _replace(text, base + items[index][1], raw, new)
        plain = [i for i in bars if items[i][2] == "|" and not items[i][3]
                 and (not closes or i > closes[-1]) and i not in (bars[-1],)]
        plain = [i for i in plain if bars.index(i) >= 1]
        if not plain:
            return None
        index = rng.choice(plain)
        return _replace(text, base + items[index][1], raws[index], "|:")
    if kind == "misplaced-ending":
        if endings:
            choice = rng.choice(["swap", "unclose"])
            twos = [i for i in endings if 2 in items[i][3 if items[i][0] is BAR else 2]]
            if choice == "unclose" and twos:
                index = twos[0]
                if items[index][0] is BAR and items[index][2] in (":|", "::"):
                    raw = raws[index]
                    return _replace(text, base + items[index][1], raw, raw.replace(":", ""))
            # swap the digits 1 and 2 of the first two endings
            out = text
            for i in sorted(endings[:2], reverse=True):
                at = base + items[i][1]
                segment = re.match(r"[:|\[\]]*\s*\[?\d", out[at:])
                if not segment:
                    return None
                digit_at = at + segment.end() - 1
                digit = out[digit_at]
                if digit not in "12":
                    return None
                out = out[:digit_at] + ("2" if digit == "1" else "1") + out[digit_at + 1:]
            return out
        if closes:
            index = closes[0]  # a second ending after a repeat that has no first ending
            at = base + items[index][1] + len(raws[index])
            return text[:at] + "[2 " + text[at:]
        plain = [i for i in bars if items[i][2] == "|" and not items[i][3]]
        if len(plain) < 4:
            return None
        first = rng.randrange(1, len(plain) - 2)
        second = first + 1
        out = text
        for i, number in ((plain[second], "2"), (plain[first], "1")):  # endings with no repeat
            at = base + items[i][1] + len(raws[i])
            out = out[:at] + f"[{number} " + out[at:]
        return out
    raise ValueError(f"unknown variant kind {kind!r}")


def judge(text: str) -> tuple[list[str], list[str]]:
    """(abc2midi's bar and repeat messages, our errors) for one tune text."""
    from folkrnn.reference import abc2midi_check

    theirs = abc2midi_flags(abc2midi_check(text))
    report = validate_tune(text)
    return theirs, [str(issue) for issue in report.errors]


def agreement(tunes, sample: int, seed: int, progress: bool = False) -> dict:
    """Run the comparison on ``sample`` tunes drawn with ``seed``; return the figures and cases."""
    rng = random.Random(seed)
    chosen = rng.sample(list(tunes), min(sample, len(tunes)))
    real = {"both_pass": 0, "both_flag": 0, "only_abc2midi": [], "only_us": []}
    broken = {kind: {"made": 0, "abc2midi_flags": 0, "we_flag": 0, "we_miss": [], "only_us": []}
              for kind in KINDS}
    clean = []
    for number, tune in enumerate(chosen):
        theirs, ours = judge(tune.text)
        case = {"tune": f"{tune.file} {tune.label}", "abc2midi": theirs, "ours": ours}
        if theirs and ours:
            real["both_flag"] += 1
        elif theirs:
            real["only_abc2midi"].append(case)
        elif ours:
            real["only_us"].append(case)
        else:
            real["both_pass"] += 1
            clean.append(tune)
        if progress and number % 200 == 199:
            print(f"  {number + 1} real tunes", file=sys.stderr)
    for tune in clean:
        for kind in KINDS:
            text = variant(tune.text, kind, rng)
            if text is None:
                continue
            theirs, ours = judge(text)
            entry = broken[kind]
            entry["made"] += 1
            case = {"tune": f"{tune.file} {tune.label}", "abc2midi": theirs, "ours": ours,
                    "text": text}
            if theirs:
                entry["abc2midi_flags"] += 1
                if ours:
                    entry["we_flag"] += 1
                else:
                    entry["we_miss"].append(case)
            elif ours:
                entry["only_us"].append(case)
    passes = real["both_pass"] + len(real["only_us"])
    flagged = sum(entry["abc2midi_flags"] for entry in broken.values())
    caught = sum(entry["we_flag"] for entry in broken.values())
    return {
        "real_tunes": len(chosen),
        "abc2midi_passes": passes,
        "we_pass_of_those": real["both_pass"],
        "pass_agreement": real["both_pass"] / passes if passes else 1.0,
        "broken_abc2midi_flags": flagged,
        "we_flag_of_those": caught,
        "flag_agreement": caught / flagged if flagged else 1.0,
        "real": real, "broken": broken,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=2000, help="real tunes drawn from the corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=10 ** 6, help="disagreements printed per kind")
    args = parser.parse_args()
    from folkrnn.reference import abc2midi_available

    if not abc2midi_available():
        raise SystemExit("abc2midi is not installed (apt install abcmidi)")
    started = time.perf_counter()
    result = agreement(corpus_tunes(), args.sample, args.seed, progress=True)
    real, broken = result["real"], result["broken"]
    print(f"real tunes: {result['real_tunes']}; abc2midi passes {result['abc2midi_passes']}, "
          f"of which we pass {result['we_pass_of_those']} ({result['pass_agreement']:.1%}); "
          f"both flag {real['both_flag']}, only abc2midi flags {len(real['only_abc2midi'])}")
    for kind, entry in broken.items():
        share = entry["we_flag"] / entry["abc2midi_flags"] if entry["abc2midi_flags"] else 1.0
        print(f"{kind}: made {entry['made']}, abc2midi flags {entry['abc2midi_flags']}, we flag "
              f"{entry['we_flag']} ({share:.1%}); only we flag {len(entry['only_us'])}")
    print(f"broken variants abc2midi flags: {result['broken_abc2midi_flags']}, we flag "
          f"{result['we_flag_of_those']} ({result['flag_agreement']:.1%})")

    def show(title: str, cases: list[dict], text: bool = False) -> None:
        print(f"\n== {title}: {len(cases)}")
        for case in cases[:args.show]:
            print(f"- {case['tune']}")
            print(f"    abc2midi: {'; '.join(case['abc2midi']) or '-'}")
            print(f"    ours: {'; '.join(case['ours']) or '-'}")

    show("real tunes abc2midi passes and we flag", real["only_us"])
    show("real tunes abc2midi flags and we pass", real["only_abc2midi"])
    for kind, entry in broken.items():
        show(f"{kind} variants abc2midi flags and we pass", entry["we_miss"])
        show(f"{kind} variants only we flag", entry["only_us"])
    summary = {key: result[key] for key in (
        "real_tunes", "abc2midi_passes", "we_pass_of_those", "pass_agreement",
        "broken_abc2midi_flags", "we_flag_of_those", "flag_agreement")}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
