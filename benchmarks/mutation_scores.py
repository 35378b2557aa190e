"""Mutation score per module from mutmut's results (``make mutation``; docs/mutation.md).

Usage: ``python benchmarks/mutation_scores.py tables metrics ...`` from the repository root, after
``mutmut run``. Prints a Markdown table (score = killed / (killed + survived); timeouts count as
killed, mutants no test reaches are listed apart) and every surviving mutant by name; ``mutmut
show <name>`` prints its diff.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def results() -> dict[str, str]:
    """Mutant name -> status, from ``mutmut results --all true``."""
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True,
                         check=True).stdout
    pairs = (line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line)
    return {name: status for name, status in pairs}


def main(modules: list[str]) -> None:
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, status in results().items():
        module = name.split(".")[1]  # dmbn.<module>.x_<function>__mutmut_<n>
        if module not in modules:
            continue
        by_module[module]["killed" if status in KILLED else status] += 1
        if status == "survived":
            survivors[module].append(name)
    print("| module | mutants | killed | survived | no tests | not checked | score |")
    print("|---|---|---|---|---|---|---|")
    for module in modules:
        c = by_module[module]
        tested = c["killed"] + c["survived"]
        score = f"{100 * c['killed'] / tested:.1f} %" if tested else "–"
        print(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['no tests']} "
              f"| {c['not checked']} | {score} |")
    for module in modules:
        for name in sorted(survivors[module]):
            print(f"survived: {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
