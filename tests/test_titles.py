"""Title cleaning (``Normalisation.clean_titles``): each rule on hand-written titles in the style
of the collections, idempotence (on these and on every title music21 ships), and the tokenizer's
use of it."""

from __future__ import annotations

import pytest

from folkrnn.abc import Normalisation, detokenize, read_text, split_tunebook, tokenize
from folkrnn.abc.tokens import SPACE, _ascii_title, clean_title
from folkrnn.corpus import COLLECTIONS, music21_corpus_dir

CASES = [
    # O'Neill's inversions, with stray dots, and other articles
    ("Absent Minded Man, The", "The Absent Minded Man"),
    ("Night Was Calm., The", "The Night Was Calm"),
    ("Hills of Ireland. The", "The Hills of Ireland"),
    ("BAG OF MEAL, THE", "The Bag of Meal"),
    ("Maid at the Well, A", "A Maid at the Well"),
    ("Old Pipe, An", "An Old Pipe"),
    ("Belle Meuniere, La", "La Belle Meuniere"),
    ("Petit Bal, Le", "Le Petit Bal"),
    ("Billy, The Kid's", "Billy, the Kid's"),  # not an inversion: ", The" is not at the end
    # Ryan's dance suffixes: dropped, or kept after a possessive
    ("Bundle and Go -- Jig", "Bundle and Go"),
    ("SMASH THE WINDOWS -- REEL", "Smash the Windows"),
    ("WALKER STREET -- REEL.", "Walker Street"),
    ("SIR GEORGE CLARK'S -- STRATHSPEY", "Sir George Clark's Strathspey"),
    ("Boson Rat:tlers' -- Reel", "Boson Rattlers' Reel"),
    ("BELLES OF EDINBORO' -- HIGHLAND FLING", "Belles of Edinboro'"),
    ("Root, Hog or Die - Jig", "Root, Hog or Die"),
    ("CAMP-MEETING -- JIG No.2.", "Camp-Meeting"),
    ("The Gobby O -- Jig (or Jefferson and Liberty)", "The Gobby O"),
    ("NIGHT OF FUN -- JIG., THE", "The Night of Fun"),
    ("Avalanche (Lancashire) -- Clog", "Avalanche"),
    ("WALK AROUND. -- DON'T GET WEARY.", "Walk Around, Don't Get Weary"),  # not a dance: kept
    ("Ha yao gua  ---- Shuang hao", "Ha yao gua, Shuang hao"),
    ("The Flogging Reel", "The Flogging Reel"),  # a dance in the title itself stays
    # all capitals -> title case; small words lower-case but first and last; names kept
    ("CONNAUGHT MAN'S RAMBLES", "Connaught Man's Rambles"),
    ("A MAID WITHOUT A GOWN", "A Maid Without a Gown"),
    ("I'M MARRIED ONE YEAR TODAY", "I'm Married One Year Today"),
    ("HUGH O'NEILL'S LAMENT", "Hugh O'Neill's Lament"),
    ("McLEAN'S LAMENTATION", "McLean's Lamentation"),
    ("MCDONALD'S REEL", "McDonald's Reel"),
    ("TRUE LOVE CAN NE'ER FORGET", "True Love Can Ne'er Forget"),
    ("A'WILLIE, WE HAVE MISS'D YOU", "A'Willie, We Have Miss'd You"),
    ("THE ONE-LEGGED MAN", "The One-Legged Man"),
    ("HENRY VIII's March", "Henry VIII's March"),
    ("Welcome To Cork", "Welcome to Cork"),
    ("Molly Put the Kettle On", "Molly Put the Kettle On"),
    ("Oh! The Shamrock", "Oh! The Shamrock"),
    ("the Boys of Carrigallen", "The Boys of Carrigallen"),
    ("Sheela na Gigg", "Sheela na Gigg"),
    ("Dr. MacKay,", "Dr. MacKay"),
    ("Mr. F.H. Bindon's March.", "Mr. F.H. Bindon's March"),
    # numbering, settings, catalogue and page references
    ("The Hare in the Corn. No. 1.", "The Hare in the Corn"),
    ("Out With the Boys. 2nd Setting.", "Out with the Boys"),
    ("Fisher's Hornpipe (1st Setting)", "Fisher's Hornpipe"),
    ("Chevy Chase 3", "Chevy Chase"),
    ("The Twelve Days of Christmas (1)", "The Twelve Days of Christmas"),
    ("1. The Kesh", "The Kesh"),
    ("#12 The Kesh", "The Kesh"),
    ("Es blast ein Hirt (5-66), S. 107", "Es blast ein Hirt"),
    ("Wiederbegegnung auf dem Kirchweg (172), S.379", "Wiederbegegnung auf dem Kirchweg"),
    ("Spirit of 1880 -- Reel", "Spirit of 1880"),  # a year is not a variant's number
    ("Quick Step 23d. Regt.", "Quick Step 23d. Regt"),
    # bracketed notes, quotes, ABC escapes, colons, ampersands, stray punctuation
    ("Der Maedchenmoerder (Halewijn - Ulinger)", "Der Maedchenmoerder"),
    ("SWEET ELLEN, (or Figure Eight.)", "Sweet Ellen"),
    ('"All Aboard" -- Reel', "All Aboard"),
    ('Paddy "Go Easy"', "Paddy Go Easy"),
    ("La Nov\\'ell\\'e Hol\\'endoise.", "La Novelle Holendoise"),
    ("Wat:erloo -- Reel", "Waterloo"),
    ("Col: McDonald's Strathsy.", "Col McDonald's Strathsy"),
    ("T:Beebe's -- Hornpipe", "Beebe's Hornpipe"),
    ("Rough & Hardy.", "Rough and Hardy"),
    ("There's my thumb &c.", "There's my thumb"),
    ("Perth=Shire Hunt.", "Perth-Shire Hunt"),
    ("Baltioura,", "Baltioura"),
    ("He Left  Us in Sorrow.", "He Left Us in Sorrow"),
    # already clean: unchanged
    ("The Connaught Man's Rambles", "The Connaught Man's Rambles"),
    ("Kitty O'Neill", "Kitty O'Neill"),
    ("", ""),
]


@pytest.mark.parametrize(("raw", "clean"), CASES)
def test_clean_title(raw: str, clean: str) -> None:
    assert clean_title(raw) == clean


@pytest.mark.parametrize(("raw", "clean"), CASES)
def test_cleaning_is_idempotent(raw: str, clean: str) -> None:
    assert clean_title(clean_title(raw)) == clean_title(raw)


def _music21_titles() -> list[str]:
    titles = []
    root = music21_corpus_dir()
    for collection in COLLECTIONS:
        for path in sorted((root / collection.name).glob("*.abc")):
            for line in read_text(path).splitlines():
                if line.startswith("T:"):
                    titles.append(_ascii_title(line[2:]))
    return titles


def test_cleaning_is_idempotent_on_every_title_music21_ships() -> None:
    titles = _music21_titles()
    assert len(titles) > 10_000
    cleaned = [clean_title(title) for title in titles]
    again = [(title, clean) for title, clean in zip(titles, cleaned) if clean_title(clean) != clean]
    assert not again, again[:10]
    assert sum(1 for title in cleaned if not title) < 10  # cleaning rarely leaves nothing


def _title_of(tokens: list[str]) -> str:
    chars = []
    for token in tokens[1:]:
        if token.startswith("R:"):
            break
        chars.append(" " if token == SPACE else token)
    return "".join(chars)


TUNE = """X:1
T:SIR GEORGE CLARK'S -- STRATHSPEY
T:Another Name
R:strathspey
M:4/4
L:1/8
K:G
GABc d2B2|c2A2 B2G2:|
"""


def test_tokenize_cleans_the_first_title_and_round_trips() -> None:
    tokens = tokenize(TUNE)
    assert _title_of(tokens) == "Sir George Clark's Strathspey"
    assert tokenize(detokenize(tokens)) == tokens
    raw = tokenize(TUNE, Normalisation(clean_titles=False))
    assert _title_of(raw) == "SIR GEORGE CLARK'S -- STRATHSPEY"
    assert raw[len(_title_of(raw)) + 1:] == tokens[len(_title_of(tokens)) + 1:]  # the rest alike


def test_clean_titles_is_a_saved_setting() -> None:
    assert Normalisation().clean_titles is True
    assert Normalisation().to_dict()["clean_titles"] is True
    assert Normalisation.from_dict(Normalisation().to_dict()) == Normalisation()
    # settings saved before the field existed meant raw titles
    old = {key: value for key, value in Normalisation().to_dict().items() if key != "clean_titles"}
    assert Normalisation.from_dict(old).clean_titles is False


def test_split_tunebook_keeps_titles_for_the_tokenizer() -> None:
    """A tunebook's tunes are tokenised with their own (first, cleaned) titles."""
    book = TUNE + "\n" + TUNE.replace("X:1", "X:2").replace(
        "SIR GEORGE CLARK'S -- STRATHSPEY", "Absent Minded Man, The")
    titles = [_title_of(tokenize(tune.text)) for tune in split_tunebook(book)]
    assert titles == ["Sir George Clark's Strathspey", "The Absent Minded Man"]
