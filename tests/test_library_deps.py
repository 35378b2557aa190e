"""The library's public names need torch alone (issue #28's lighter install): a user who only
wants the estimators must not pull in the workflow's pandas, pandera, plotting or config stack.
Every name in ``dmbn.__all__`` is imported, and a bank is run, in a fresh interpreter where
importing any of the workflow's libraries fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap

WORKFLOW_ONLY = ("pandas", "pandera", "matplotlib", "sklearn", "scipy", "jinja2", "yaml", "jsonschema",
                 "tabulate", "snakemake", "torchvision")

SCRIPT = textwrap.dedent(f"""
    import importlib.abc, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {WORKFLOW_ONLY!r}:
                raise ImportError(f"the library imported {{name}}")

    sys.meta_path.insert(0, Refuse())
    import torch
    import dmbn
    for name in dmbn.__all__:
        getattr(dmbn, name)
    import dmbn.test_time  # the test-time rules are library too (docs/LIBRARY.md)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    bank = dmbn.EstimatorBank(model)
    for _ in range(3):
        model(torch.randn(8, 4))
        bank.observe()
    print("imported:", " ".join(sorted(m for m in sys.modules if m.startswith("dmbn"))))
""")


def test_the_library_needs_torch_alone():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dmbn.bank" in result.stdout  # the script ran to its end


def test_the_refusal_works():
    """The control: the same guard stops a module of the workflow (dmbn.tables needs pandas)."""
    script = SCRIPT.replace("import dmbn\n", "import dmbn\nimport dmbn.tables\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "the library imported pandas" in result.stderr
