"""Which copy of a picture to keep: the one with the fewest signs of having been edited.

Copies of one photo are compared with each other, not with fixed norms: two copies of one
picture differ only by what was done to them, so "less detail than another copy of the
same picture" is evidence, where "little detail" alone could be the subject (fog, a
plain wall). Each copy collects *defects*, each the mark a common edit leaves
(:data:`DEFECTS`), and the keeper is the copy with the fewest. Ties (a mirror image and
its original cannot be told apart) go to camera metadata, then the earliest capture,
then the most picture pixels, then the largest file.

Pure: takes :class:`~lookalike.image_facts.ImageFacts`, reads nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from ..image_facts import ImageFacts

# "As much picture": content pixels (inside any border) within this factor.
SIMILAR_SIZE = 1.25
# Border: uniform margins over this share of the area more than a copy with as much
# picture has (a crop that cut a frame away does not count against the framed original,
# and a frame that every copy shares counts against none), or this many more flat corners
# (a rotation without a crop fills all four).
BORDER_FRACTION = 0.02
CORNERS_MORE = 3
# Fine detail is the share of spectral energy in the upper half of the band
# (``top_band_energy``). Upscaled: more pixels than a smaller copy but under
# UPSCALED_RATIO of its fine detail: enlarging adds pixels, no detail (2x bicubic
# enlargements of neardup_flowers' downscaled copies keep 0.01-0.27 of the copy's, median
# 0.1; a downscaled copy packs a photo's detail into fewer pixels, and the originals keep
# 0.12-6 times their downscaled copies' share, under 0.15 for 1 in 54). Blurred: under
# BLURRED_RATIO of the fine detail *and* under BLURRED_SHARPNESS of the sharpness of a
# copy with as many pixels or fewer; two measures must agree, so that a caption's crisp
# letters on one copy do not make its original look blurred.
UPSCALED_RATIO = 0.15
BLURRED_RATIO = 0.25
BLURRED_SHARPNESS = 0.5
# Recompressed: more than this many quality steps below the best JPEG of the group
# (estimates from one encoder's tables are exact to a step or two).
QUALITY_STEPS = 10
# Smaller: fewer picture pixels than this share of the largest copy that is not upscaled.
SMALLER = 0.8
# Greyscale: mean chroma below GREY while another copy has above COLOUR.
GREY, COLOUR = 4.0, 12.0
# Tonal edits, judged against copies without other defects. Narrowed: a tonal range
# NARROWER levels narrower than such a copy's (darkened, or contrast lowered). Clipped: a
# share of clipped highlights larger by CLIPPED_MORE and CLIPPED_RATIO times than such a
# copy's that is not narrowed (brightened, or contrast raised). A narrowed copy is no
# reference for clipping: darkening pulls the original's own clipped highlights off the
# pile, and would make the original look clipped. Shadows are left out for the same
# reason in reverse: lifting them (a brighter copy) spreads the original's pile of blacks.
NARROWER = 20
CLIPPED_MORE = 0.01
CLIPPED_RATIO = 1.5

# Defect -> the badge a keeper without it earns when another copy has it.
DEFECTS: dict[str, str] = {
    "border": "no border",
    "upscaled": "original resolution",
    "blurred": "sharpest",
    "recompressed": "best JPEG quality",
    "smaller": "full size",
    "greyscale": "in colour",
    "tonal": "untouched tones",
}
# Tie-breaks among the copies with the fewest defects, in order, as badges.
TIE_BREAKS = ("camera data", "earliest", "most pixels", "largest file")


def defects(facts: Sequence[ImageFacts]) -> list[set[str]]:
    """The defects of each copy of one picture, judged against the other copies:

    * ``border``: uniform margins (padding, a frame, a caption bar) around the picture,
      or corners filled flat by a rotation, that a copy showing as much picture lacks;
    * ``upscaled``: more pixels than a smaller copy, but far less fine detail: enlarged;
    * ``blurred``: far less fine detail and sharpness than a copy with as many pixels or
      fewer;
    * ``recompressed``: a clearly lower JPEG quality than the best copy's;
    * ``smaller``: clearly fewer picture pixels (inside any border) than the largest copy
      that is not upscaled: downscaled or cropped;
    * ``greyscale``: no colour where another copy has it;
    * ``tonal``: brightness or contrast changed: a clearly narrower tonal range, or
      clearly more clipped highlights, than a copy without other defects.
    """
    found = [_compared(fact, [other for j, other in enumerate(facts) if j != i])
             for i, fact in enumerate(facts)]
    best_quality = max((f.jpeg_quality for f in facts if f.jpeg_quality is not None),
                       default=None)
    most_colour = max((f.colourfulness for f in facts), default=0.0)
    largest = max((f.content_pixels for f, bad in zip(facts, found) if "upscaled" not in bad),
                  default=0)
    for fact, bad in zip(facts, found):
        if (best_quality is not None and fact.jpeg_quality is not None
                and fact.jpeg_quality < best_quality - QUALITY_STEPS):
            bad.add("recompressed")
        if fact.colourfulness < GREY and most_colour > COLOUR:
            bad.add("greyscale")
        if fact.content_pixels < SMALLER * largest:
            bad.add("smaller")
    references = [i for i, bad in enumerate(found) if not bad] or list(range(len(facts)))
    narrowed = {i for i, fact in enumerate(facts)
                if any(fact.tonal_range < facts[r].tonal_range - NARROWER for r in references)}
    unnarrowed = [r for r in references if r not in narrowed]
    for i, (fact, bad) in enumerate(zip(facts, found)):
        if i in narrowed or any(_clipped_more(fact, facts[r]) for r in unnarrowed if r != i):
            bad.add("tonal")
    return found


def _compared(fact: ImageFacts, others: Sequence[ImageFacts]) -> set[str]:
    """``fact``'s border, upscaling and blur, each judged against every other copy."""
    found: set[str] = set()
    for other in others:
        as_much = other.content_pixels * SIMILAR_SIZE >= fact.content_pixels
        if as_much and (fact.border_fraction > other.border_fraction + BORDER_FRACTION
                        or fact.filled_corners >= other.filled_corners + CORNERS_MORE):
            found.add("border")
        if not as_much and fact.top_band_energy < UPSCALED_RATIO * other.top_band_energy:
            found.add("upscaled")
        if (as_much and fact.top_band_energy < BLURRED_RATIO * other.top_band_energy
                and fact.sharpness < BLURRED_SHARPNESS * other.sharpness):
            found.add("blurred")
    return found


def _clipped_more(fact: ImageFacts, reference: ImageFacts) -> bool:
    return (fact.highlights_clipped > reference.highlights_clipped + CLIPPED_MORE
            and fact.highlights_clipped > CLIPPED_RATIO * reference.highlights_clipped)


def choose_keeper(
    facts: Sequence[ImageFacts], preferred: Collection[int] = ()
) -> tuple[int, list[str]]:
    """Index of the copy to keep, and why, as short badge texts.

    The keeper has the fewest :func:`defects`; among those, camera metadata (EXIF make or
    model) wins, then the earliest capture date, then the most picture pixels, then the
    largest file, then an index in ``preferred`` (e.g. a file that links point to: moving
    it would break them), then the first index. Reasons name each defect that the keeper
    lacks and another copy has, and each tie-break on the evidence that decided.
    """
    if not facts:
        raise ValueError("no copies to choose from")
    found = defects(facts)
    fewest = min(len(bad) for bad in found)
    contenders = [i for i, bad in enumerate(found) if len(bad) == fewest]

    def rank(i: int) -> tuple[bool, datetime, int, int, bool, int]:
        fact = facts[i]
        return (not fact.camera, fact.captured or datetime.max, -fact.content_pixels,
                -fact.file_size, i not in preferred, i)

    keeper = min(contenders, key=rank)
    others = [i for i in range(len(facts)) if i != keeper]
    reasons = [badge for defect, badge in DEFECTS.items()
               if defect not in found[keeper] and any(defect in found[i] for i in others)]
    rivals = [i for i in contenders if i != keeper]
    mine = rank(keeper)
    for level, badge in enumerate(TIE_BREAKS):
        beaten = [i for i in rivals if rank(i)[level] != mine[level]]
        if beaten:
            reasons.append(badge)
        rivals = [i for i in rivals if i not in beaten]
    return keeper, reasons
