"""A study's tables and figures on one page, laid out for a laptop (results/<study>/index.html)."""

from dmbn.logs import logging_to
from dmbn.study_page import write_study_page

with logging_to(snakemake.log[0]) as log:
    write_study_page(snakemake.output.page, snakemake.wildcards.study, list(snakemake.input.parts))
    log.info("%d tables and figures on one page", len(snakemake.input.parts))
