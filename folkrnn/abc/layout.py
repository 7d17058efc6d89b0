"""Where the lines of an ABC tune break: on its phrases, as tunebooks write them.

Both writers of ABC text (``folkrnn.abc.tokens.detokenize`` for the model's tunes and
``folkrnn.abc.writer.tune_to_abc`` for any Tune) describe the body as a list of measures and ask
:func:`phrase_breaks` after which of them a line ends. abcm2ps and abcjs keep the text's line
breaks, so this is the layout a musician sees:

- a new line at every part boundary (after ``:|``, ``||``, ``|]``, ``::``, and before a ``|:`` that
  opens a part);
- within a part, four bars to a line, counted from its first full bar: a pickup (a short first
  measure) rides on the first line and is not counted, so every line starts a 4-bar phrase;
- never a lone bar on a line (abcm2ps and abcjs stretch one across the whole width): the last bar
  of a part joins the line before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["Measure", "phrase_breaks", "BARS_PER_LINE", "SECTION_BARS"]

BARS_PER_LINE = 4
# Bar lines that end a part: a line never runs on past them.
SECTION_BARS = (":|", "||", "|]", "::")


@dataclass(frozen=True)
class Measure:
    """One measure of the body, as a writer is about to write it."""

    length: Fraction  # its written length (any unit; 0 for the nothing before a leading |:)
    closing: str  # the bar line that closes it (| || |] [| |: :| ::), "" at the end of the body
    ending: bool = False  # an ending (|1, :|2, [2) starts at the bar line that opens it


def phrase_breaks(measures: Sequence[Measure], bar_length: Fraction | None) -> set[int]:
    """The indices of the measures after whose closing bar a line ends (the last one excluded).

    ``bar_length`` is a full bar in the unit of :attr:`Measure.length` (None or 0 for free meter:
    every measure counts as a bar). A ``|:`` that closes an empty measure (after ``:|``) where a
    line breaks is written at the start of the next line by the caller; so is an ending's number
    (``[2``). One that closes a measure of music (a second ending's, with the next part's repeat
    opening on it) ends its line: abcm2ps then closes the line with a bar line and opens the next
    with the repeat sign, where at the start of the next line it left the bar unclosed.
    """
    # parts: runs of measures, each ending after a section bar (not one followed by an ending:
    # ":|2" keeps the second ending in the part) or a |: that opens the next part
    parts: list[list[int]] = []
    current: list[int] = []
    for index, measure in enumerate(measures):
        current.append(index)
        following = measures[index + 1] if index + 1 < len(measures) else None
        if following is None:
            break
        # (a |: after a part's pickup, "A2|:d2fd ...", opens no new part: the pickup leads into it)
        opens = measure.closing == "|:" and any(
            measures[i].length >= bar_length if bar_length else measures[i].length > 0 for i in current)
        if opens or (measure.closing in SECTION_BARS and not following.ending):
            parts.append(current)
            current = []
    if current:
        parts.append(current)
    breaks: set[int] = set()
    for part in parts:
        filled = [i for i in part if measures[i].length > 0]
        if not filled:
            continue
        counted = list(filled)
        if bar_length and len(counted) > 1 and measures[counted[0]].length < bar_length:
            counted = counted[1:]  # the pickup rides on the first line
        lines = [counted[k:k + BARS_PER_LINE] for k in range(0, len(counted), BARS_PER_LINE)]
        if len(lines) > 1 and len(lines[-1]) == 1:  # no lone bar: it joins the line before
            last = lines.pop()
            lines[-1] += last
        for line in lines[:-1]:
            breaks.add(line[-1])
        breaks.add(part[-1])
    breaks.discard(len(measures) - 1)
    return breaks
