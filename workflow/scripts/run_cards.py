"""What produced each run of a study: its run cards, one row per run (CSV and HTML)."""

from pathlib import Path

from dmbn.logs import logging_to
from dmbn.report import rst_to_html, write_page
from dmbn.runs import read_cards
from dmbn.tables import html, styled

with logging_to(snakemake.log[0]) as log:
    cards = read_cards(snakemake.input.cards, snakemake.params.runs)
    log.info("%d run cards", len(cards))
    cards.to_csv(snakemake.output.csv, index=False)
    table = html(styled(cards), 1, rst_to_html(Path(snakemake.input.caption).read_text()))
    write_page(snakemake.output.html, f"{snakemake.wildcards.study}: run cards", [table])
