"""Run cards record the processor kind and the data pipeline's numeric libraries: results are
bitwise equal only on the same kind of CPU (a kernel chosen for another CPU sums in another order),
so a reproduction that differs must be traceable to the machine from its card."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from dmbn.cards import environment
from dmbn.readback import ReadbackError
from dmbn.runs import read_cards
from test_readback import a_card

LABEL = {"dataset": "digits", "regime": "mini", "arch": "mlp", "seed": 1, "member": "bank"}


def test_the_card_names_the_processor_and_the_kernels_torch_uses():
    cpu = environment("cpu")["cpu"]
    assert cpu.endswith(f"; torch kernels {torch.backends.cpu.get_cpu_capability()}"), cpu
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        family = re.search(r"^cpu family\s*:\s*(\d+)$", cpuinfo.read_text(), re.M)
        if model:
            assert cpu.startswith(model.group(1).strip()), cpu
        if family:
            assert f"family {family.group(1)}," in cpu, cpu


def test_the_card_reports_the_kernels_actually_chosen_not_the_best_available():
    # ATen picks its vectorised kernels at start-up; ATEN_CPU_CAPABILITY=default forces the
    # scalar ones, which sum in another order: the card must say so.
    code = "from dmbn.cards import cpu_kind; print(cpu_kind())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"ATEN_CPU_CAPABILITY": "default", "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip().endswith("; torch kernels DEFAULT"), done.stdout


def test_the_card_names_the_data_libraries_versions():
    env = environment("cpu")
    for package in ("numpy", "scikit-learn"):
        assert env[package] == metadata.version(package)


def test_run_cards_table_carries_the_new_fields_and_marks_old_cards(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(a_card()))  # a card written before the fields existed
    new.write_text(json.dumps({**a_card(), "cpu": "Some CPU; torch kernels AVX2", "numpy": "2.4.6",
                               "scikit-learn": "1.9.1"}))
    table = read_cards([old, new], [LABEL, {**LABEL, "seed": 2}])
    assert table["cpu"].tolist() == ["not recorded", "Some CPU; torch kernels AVX2"]
    assert table["numpy"].tolist() == ["not recorded", "2.4.6"]
    assert table["scikit-learn"].tolist() == ["not recorded", "1.9.1"]
    assert table["threads"].tolist() == [1, 1]  # the older columns stay as they were


@pytest.mark.parametrize("field", ["cpu", "numpy", "scikit-learn"])
def test_an_empty_new_field_is_refused_naming_it(tmp_path, field):
    from dmbn.readback import read_card

    path = tmp_path / "card.json"
    path.write_text(json.dumps({**a_card(), field: ""}))
    with pytest.raises(ReadbackError, match=f"field {field}"):
        read_card(path)
