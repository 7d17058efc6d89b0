"""How often folkrnn plays a tune exactly as abc2midi does, over the default corpus.

For every tune of music21's shipped ABC collections, the notes of
``folkrnn.abc.parse(text).unfold()`` (grace notes dropped) are compared with the notes abc2midi
writes for the same text (``folkrnn.reference.abc2midi_notes``: first voice, ornaments not
expanded, onsets within one tick of 1/480 quarter note). Prints per collection the tunes,
identical, different, our errors and abc2midi's failures, a sample of disagreements, and as the
last line a JSON object. Tunes abc2midi cannot play (it fails, or writes no notes) are counted
and listed apart, and left out of the agreement rate; tunes we cannot read count as
disagreements.

Each tune is its own text, from its X: line to before the next X: line. Lines before a file's
first X: (its file header) are put in front of each tune when they are ``%%`` directives or
field lines, as ABC 2.1 says a file header applies to every tune; comments and free text are
not. (In music21's collections, only ``%`` comments come before the first X:, so in practice
each tune goes alone.)

    .venv/bin/python benchmarks/abc2midi_agreement.py --limit 200 --show 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from folkrnn.abc import read_text, split_tunes  # noqa: E402
from folkrnn.errors import FolkError  # noqa: E402
from folkrnn.reference import abc2midi_available, abc2midi_notes, compare_notes  # noqa: E402

COLLECTIONS = ["essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth", "miscFolk"]
_HEADER_LINE = re.compile(r"^(%%|[A-Za-z]:)")


def corpus_root() -> Path:
    """music21's corpus folder, found through the installed package (never the network)."""
    import importlib.util

    spec = importlib.util.find_spec("music21")
    if spec is None or spec.origin is None:
        raise SystemExit("music21 is not installed; it holds the default corpus")
    return Path(spec.origin).parent / "corpus"


def split_file(text: str) -> list[str]:
    """The tunes of one file, each with the file header's directives and fields in front."""
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.startswith("X:")), len(lines))
    header = [line for line in lines[:first] if _HEADER_LINE.match(line)]
    tunes = split_tunes(text)
    prefix = "\n".join(header) + "\n" if header else ""
    return [tune if not prefix or tune.startswith(prefix) else prefix + tune for tune in tunes]


def label(text: str) -> tuple[str, str]:
    number = re.search(r"^X:\s*(.*?)\s*$", text, re.MULTILINE)
    title = re.search(r"^T:\s*(.*?)\s*$", text, re.MULTILINE)
    return (number.group(1) if number else "?"), (title.group(1) if title else "")


def our_notes(text: str):
    """Our (onset, pitch) list for one tune: parse, unfold, grace notes dropped."""
    from folkrnn.abc import parse

    return sorted((note.onset, note.pitch) for note in parse(text).unfold() if not note.grace)


def judge(task: tuple[str, str, str]) -> dict:
    """Compare one tune: (collection, file, text) -> a record with its ``kind``."""
    collection, file, text = task
    number, title = label(text)
    record = {"collection": collection, "file": file, "X": number, "title": title}
    try:
        reference = abc2midi_notes(text)
    except FolkError as error:
        return {**record, "kind": "reference_error", "message": error.message}
    if not reference:
        return {**record, "kind": "reference_empty", "message": "abc2midi wrote no notes"}
    try:
        ours = our_notes(text)
    except FolkError as error:
        return {**record, "kind": "ours_error", "message": error.message}
    except Exception as error:  # a bug in our parser: count it, say what it was
        return {**record, "kind": "ours_bug", "message": f"{type(error).__name__}: {error}"}
    message = compare_notes(ours, reference)
    if message is None:
        return {**record, "kind": "identical"}
    return {**record, "kind": "different", "message": message}


KINDS = ["identical", "different", "ours_error", "ours_bug", "reference_error", "reference_empty"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", action="append", choices=COLLECTIONS,
                        help="a collection to check (repeatable; default: all five)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many tunes per collection")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--show", type=int, default=5, help="disagreements to print per collection")
    parser.add_argument("--dump", type=Path,
                        help="write every disagreement and failure here, as JSON lines")
    args = parser.parse_args(argv)
    if not abc2midi_available():
        raise SystemExit("abc2midi is not installed (apt install abcmidi)")
    root = corpus_root()
    tasks: list[tuple[str, str, str]] = []
    for collection in args.collection or COLLECTIONS:
        count = 0
        for path in sorted((root / collection).rglob("*.abc")):
            for tune in split_file(read_text(path)):
                if args.limit and count >= args.limit:
                    break
                tasks.append((collection, str(path.relative_to(root)), tune))
                count += 1

    start = time.perf_counter()
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            records = list(pool.imap(judge, tasks, chunksize=16))
    else:
        records = [judge(task) for task in tasks]
    seconds = time.perf_counter() - start

    by_collection: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_collection[record["collection"]].append(record)
    summary: dict[str, dict] = {}
    for collection, items in by_collection.items():
        counts = Counter(record["kind"] for record in items)
        playable = len(items) - counts["reference_error"] - counts["reference_empty"]
        summary[collection] = {
            "tunes": len(items), **{kind: counts[kind] for kind in KINDS},
            "agreement": round(counts["identical"] / playable, 4) if playable else None,
        }
        print(f"\n{collection}: {len(items)} tunes, {counts['identical']} identical, "
              f"{counts['different']} different, {counts['ours_error']} our errors, "
              f"{counts['ours_bug']} our crashes, {counts['reference_error']} abc2midi failures, "
              f"{counts['reference_empty']} abc2midi empty; agreement {summary[collection]['agreement']}")
        wrong = ("different", "ours_error", "ours_bug")
        shown = [r for r in items if r["kind"] in wrong][:args.show]
        for record in shown:
            print(f"  [{record['kind']}] {record['file']} X:{record['X']} {record['title']!r}: "
                  f"{record['message']}")
        unplayable = [r for r in items if r["kind"] in ("reference_error", "reference_empty")]
        for record in unplayable:
            print(f"  abc2midi cannot play {record['file']} X:{record['X']} {record['title']!r}: "
                  f"{record['message']}")

    if args.dump:
        with args.dump.open("w", encoding="utf-8") as out:
            for record in records:
                if record["kind"] != "identical":
                    out.write(json.dumps({key: record.get(key) for key in
                                          ("kind", "file", "X", "title", "message")},
                                         ensure_ascii=False) + "\n")

    totals = Counter(record["kind"] for record in records)
    playable = len(records) - totals["reference_error"] - totals["reference_empty"]
    result = {
        "tunes": len(records),
        "identical": totals["identical"],
        "different": totals["different"],
        "ours_error": totals["ours_error"] + totals["ours_bug"],
        "reference_unplayable": totals["reference_error"] + totals["reference_empty"],
        "agreement": round(totals["identical"] / playable, 4) if playable else None,
        "tunes_per_second": round(len(records) / seconds, 1) if seconds else None,
        "per_collection": summary,
    }
    print(f"\noverall: {totals['identical']}/{playable} playable tunes identical "
          f"({result['agreement']}), {len(records)} tunes in {seconds:.1f} s with {args.jobs} jobs")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
