"""Every number in the findings of docs/REPRODUCTION.md, docs/ESTIMATORS.md and docs/SHIFT.md is
a number the page's generator prints (issue #27): the prose cannot drift from the committed files.

Which numbers are checked (the rule):

* every number with a decimal point (0.0039, +0.0039, −0.0006, 20.144), signed or not;
* every percentage (81 %), every ratio written ``N×`` or ``N times``, every count written
  ``a of b`` (also ``a of the b``, ``a of its b``) or ``a/b``;
* a range of two decimals, ``0.15–0.34``, is checked as a whole (the generator prints it as a
  range), so that a change to either end is caught; a range with an integer end is two numbers.

Integers standing alone are not checked: seeds and seed counts (``n = 5``), batch sizes
(``B = 8``), epochs, layer numbers, run counts, thread and core counts, data set sizes, clock
times and dates. They are settings of the study or names of its parts, not results.

How a number is found in the generator's output: both texts are normalised (unicode minus → ``-``,
thin and no-break spaces → space, thousands separators dropped, ``N times`` → ``N×``, ``a/b`` and
``a of the b`` → ``a of b``). An interval ``m [lo, hi]`` (or ``[lo, hi]`` alone), a
``mean ± std``, a range and a number with its seeds (``0.0183 (n = 10)``, printed
``0.0183 (10)``) must appear whole (a generator's table may put a column bar between the mean and
its interval); any other number must appear as a number (not as part of a longer one), with the
same sign where the prose gives one (``+x`` also matches an unsigned ``x``; an unsigned number
matches either sign).

Not checked (exemptions, each kept small):

* text struck through (``~~…~~``): a corrected claim quoted as it was, wrong by design;
* code spans and link targets: names (``static-0.1``, ``mini-b8``) and paths, not quantities;
* β grid values named as β (``β = 0.6``, ``β ≥ 0.8``, ``β = 0.1 … 0.9``): settings of the study;
* numbers of the thesis's tables and figures (``Table 5.1``, ``Fig 5.1``): citations;
* ``EXEMPT`` below: phrases quoting measurements that the published files do not hold.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys

import pytest

from conftest import ROOT, generator_commands

DOCS = ROOT / "docs"
# page -> (its generator commands, where its findings start, where they end): the sections read
# are the findings and the paragraphs whose numbers describe the study's own files (cost,
# statistics). A page quoting two studies has a command for each; a number must be printed by one.
PAGES = {
    "REPRODUCTION.md": (generator_commands("REPRODUCTION.md"), "## What we find", "## The tables"),
    # the sweep's and the small-batch study's tables (the page's markers); finding 2's separating
    # rows first ran in the shift study (its clean test set)
    "ESTIMATORS.md": (generator_commands("ESTIMATORS.md") + [["estimator_tables.py", "shift"]],
                      "**Statistics.**", "**Figures**"),
    "SHIFT.md": ([["shift_findings.py", "shift"], ["shift_findings.py", "cnn", "cnn_b16_s1", "cnn_b16_s2", "cnn_b16_s3"]],
                 "## Findings",
                 "## What this page does not cover"),
    "CNN.md": ([["cnn_findings.py", "cnn", "cnn_b32", "cnn_b16_s1", "cnn_b16_s2", "cnn_b16_s3", "--mlp", "batch_sweep",
                 "shift"]], "## Findings", "## The numbers"),
}
# Quoted measurements whose source is a file the project does not publish; the page says so.
EXEMPT: dict[str, tuple[str, ...]] = {}  # none left: ESTIMATORS' one-run ratios gave way to published rows


SIGNED = r"[+\-]?"
NUMBER = r"[+\-]?\d+(?:\.\d+)?"
# its mean, when it has one: not part of a name (static-0.1 [...]) nor a bound (β ≥ 0.2 [...])
INTERVAL = re.compile(rf"(?:(?<![\w.\-+])(?<!≥ )(?<!≤ )({NUMBER})\s*\|?\s*)?\[({NUMBER}), ({NUMBER})\]")
MEAN_STD = re.compile(rf"({NUMBER}) ± ({NUMBER})")
# a std with its number of seeds, "0.0183 (n = 10)": the tables print it as "0.0183 (10)"
WITH_N = re.compile(rf"(?<![\w.\-+])({NUMBER}) \(n = (\d+)\)")
DECIMAL = r"\d+\.\d+"
RANGE = re.compile(rf"(?<![\w.\-+])({DECIMAL})–({DECIMAL})(?![\w.]*\d)")
# a number not glued to a word, a name (static-0.1) or another number
LONE = re.compile(r"(?<![\w.\-+/])([+\-]?)(\d+)(\.\d+)?(?![\w.]*\d)")
BETA = re.compile(r"β\*?\s*(?:=|≥|≤|≈|from)\s*$|β = [\d., …]*$")
CITATION = re.compile(r"(?:Tables?|Figs?\.?|Figures?)\s+[\d.–, and]*$")


def normalise(text: str) -> str:
    for space in "\u2009\u202f\u00a0":
        text = text.replace(space, " ")
    text = text.replace("−", "-")
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 48,000 -> 48000
    text = re.sub(r"(\d) times\b", r"\1×", text)
    text = re.sub(r"(\d+)/(\d+)", r"\1 of \2", text)
    text = re.sub(r"(\d+) of (?:the|its) (\d+)", r"\1 of \2", text)
    text = re.sub(r"(\d)%", r"\1 %", text)
    return re.sub(r"\s+", " ", text)


def _prose(text: str, exempt: tuple[str, ...] = ()) -> str:
    text = re.sub(r"\s+", " ", text)  # an exempt phrase may be wrapped over lines
    for phrase in exempt:
        text = text.replace(phrase, " ")
    text = re.sub(r"~~.*?~~", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return normalise(text)


def _printed(pattern: str, output: str) -> bool:
    return re.search(rf"(?<![\d.]){pattern}(?!\.?\d)", output) is not None


def _number_pattern(sign: str, value: str) -> str:
    """A printed number equal to ``sign value``: ``-`` must be printed, ``+`` may be dropped,
    no sign matches either."""
    if sign == "-":
        return "-" + re.escape(value)
    return ("(?<!-)\\+?" if sign == "+" else "[+\\-]?") + re.escape(value)


def unprinted_numbers(prose: str, output: str, exempt: tuple[str, ...] = ()) -> list[str]:
    """The numbers of ``prose`` that ``output`` does not print, under the module's rule, each
    with a little context."""
    text, output = _prose(prose, exempt), normalise(output)
    missing = []

    def whole(match: re.Match, parts: list[str | None], joiner) -> str:
        if not _printed(joiner(parts), output):
            missing.append(match.group(0))
        return " " * len(match.group(0))  # checked as a whole: its numbers are not checked again

    def numbers(values: list[str | None]) -> list[str]:
        return [_number_pattern(v[0] if v[0] in "+-" else "", v.lstrip("+-")) for v in values]

    text = INTERVAL.sub(lambda m: whole(m, list(m.groups()), lambda p: (
        (numbers([p[0]])[0] + r"\s*\|?\s*" if p[0] else "") + r"\[" + ", ".join(numbers(p[1:])) + r"\]")), text)
    text = MEAN_STD.sub(lambda m: whole(m, list(m.groups()), lambda p: " ± ".join(numbers(p))), text)
    text = WITH_N.sub(lambda m: whole(m, list(m.groups()), lambda p: numbers(p[:1])[0] + rf" \({p[1]}\)"), text)
    text = RANGE.sub(lambda m: whole(m, list(m.groups()), lambda p: "–".join(map(re.escape, p))), text)
    for match in LONE.finditer(text):
        sign, whole_part, fraction = match.groups()
        before, after = text[max(0, match.start() - 40):match.start()], text[match.end():match.end() + 12]
        value = whole_part + (fraction or "")
        if fraction and (BETA.search(before) or CITATION.search(before)):
            continue
        if fraction:
            found = _printed(_number_pattern(sign, value), output)
        elif re.match(r" ?(%|×)", after):
            found = _printed(re.escape(value) + re.escape(after.lstrip()[:1]).replace("%", " ?%"), output)
        elif re.match(r" of \d", after):
            other = re.match(r" of (\d+)", after).group(1)
            found = _printed(f"{value} of {other}", output)
        else:
            continue  # an integer standing alone: a setting or a name (see the module's docstring)
        if not found:
            missing.append(f"{sign}{value} in “…{before[-25:]}{match.group(0)}{after}…”")
    return missing


def findings(page: str) -> str:
    _, start, end = PAGES[page]
    text = (DOCS / page).read_text()
    return text.split(start, 1)[1].split(end, 1)[0]


@functools.cache
def generated(page: str) -> str:
    """What the page's generators print (once per page and session: it takes seconds)."""
    outputs = []
    for script, *args in PAGES[page][0]:
        if not (DOCS / "results" / args[0]).exists():
            pytest.skip(f"{args[0]} not published")
        outputs.append(subprocess.run([sys.executable, str(DOCS / script), *args], capture_output=True, text=True,
                                      check=True).stdout)
    return "\n".join(outputs)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_number_in_the_findings_is_printed_by_the_generator(page):
    output = generated(page)
    assert unprinted_numbers(findings(page), output, EXEMPT.get(page, ())) == [], \
        f"{page}: numbers in the findings that the generator does not print"


@pytest.mark.parametrize("page, quoted, changed", [
    ("REPRODUCTION.md", "+0.0039 [+0.0016, +0.0063]", "+0.0040 [+0.0016, +0.0063]"),  # one digit of an interval
    ("REPRODUCTION.md", "36×", "37×"),                                                  # a ratio
    ("REPRODUCTION.md", "46 of 200", "47 of 200"),                                      # a count
    ("REPRODUCTION.md", "0.15–0.34", "0.15–0.35"),                                      # a range's end
    ("REPRODUCTION.md", "−0.0045\n  [−0.0101, +0.0012]", "+0.0045\n  [−0.0101, +0.0012]"),  # a sign
    ("ESTIMATORS.md", "0.719 ± 0.070", "0.719 ± 0.071"),                                # a mean ± std
    ("ESTIMATORS.md", "33.626", "33.636"),                                              # a lone number
    ("ESTIMATORS.md", "0.744 ± 0.131", "0.744 ± 0.132"),         # a number of the page's second study (shift)
    ("ESTIMATORS.md", "68 of 312", "69 of 312"),                                        # a count
])
def test_a_number_changed_by_hand_is_reported(page, quoted, changed):
    """The page as published passes (test above); the same page with one number edited fails,
    and the report names the edited number."""
    prose, output = findings(page), generated(page)
    assert quoted in prose, f"{quoted!r} is no longer in the findings of {page}: pick another number"
    reported = unprinted_numbers(prose.replace(quoted, changed, 1), output, EXEMPT.get(page, ()))
    assert len(reported) == 1, reported
    assert normalise(changed).split()[0] in normalise(reported[0]), reported


def test_the_checker_reads_signs_ranges_counts_and_exemptions():
    """The rule on a made-up paragraph, each case written out by hand."""
    output = "| a | +0.0039 | [+0.0016, +0.0063] |\n0.15–0.34; 9 of 16; 36×; 81 %; 0.880 ± 0.010 (3)\n-0.0006"
    assert unprinted_numbers("gain +0.0039 [+0.0016, +0.0063], ratios 0.15–0.34, 9 of the 16 runs, "
                             "36 times, in 81 % of cells, 0.880 ± 0.010, loss −0.0006", output) == []
    # a sign flipped, a range end changed, a count changed, a percentage changed
    assert len(unprinted_numbers("loss +0.0006", output)) == 1
    assert len(unprinted_numbers("ratios 0.15–0.35", output)) == 1
    assert len(unprinted_numbers("9/17 runs", output)) == 1
    assert len(unprinted_numbers("in 82 % of cells", output)) == 1
    # not checked: integers alone, β grid values, struck-through text, code, thesis tables
    assert unprinted_numbers("B = 8, 10 seeds, β = 0.45, ~~0.123~~, `static-0.77`, Table 5.7, 48,000 images",
                             output) == []
