"""The published reproduction agrees with the committed tables it describes."""

import subprocess
import sys

import pytest

from conftest import ROOT

PUBLISHED = ROOT / "docs" / "results" / "mlp_fashion"


@pytest.mark.skipif(not PUBLISHED.exists(), reason="no published FashionMNIST results")
def test_reproduction_page_shows_the_published_tables():
    generated = subprocess.run([sys.executable, str(ROOT / "docs" / "reproduction_tables.py"), "mlp_fashion"],
                               capture_output=True, text=True, check=True).stdout
    page = (ROOT / "docs" / "REPRODUCTION.md").read_text()
    assert generated.strip() in page


def test_readme_links_the_reproduction():
    assert "docs/REPRODUCTION.md" in (ROOT / "README.md").read_text()
