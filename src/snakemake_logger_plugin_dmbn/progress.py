"""A study's progress and an estimate of the time left, from Snakemake's job events alone.

The estimate assumes what a study's jobs make plausible: jobs of one rule cost about the same
(a study's training runs share their settings but the seed), so each rule's remaining jobs take
the mean wall time of its finished ones, and they run as many at a time as have run at once so
far. A rule with no finished job yet leaves the estimate open ("estimating"), rather than
guessing."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StudyProgress:
    planned: dict[str, int] = field(default_factory=dict)   # rule -> jobs to run
    running: dict[int, tuple[str, float]] = field(default_factory=dict)  # job id -> (rule, start)
    durations: dict[str, list[float]] = field(default_factory=dict)  # rule -> finished jobs' seconds
    parallel: int = 1  # the most jobs seen running at once

    def plan(self, stats: dict[str, int]) -> None:
        """Snakemake's job stats (rule -> count, plus "total")."""
        self.planned = {rule: count for rule, count in stats.items() if rule != "total"}

    def started(self, job: int, rule: str, now: float) -> None:
        self.running[job] = (rule, now)
        self.parallel = max(self.parallel, len(self.running))

    def finished(self, job: int, now: float) -> None:
        if job in self.running:
            rule, start = self.running.pop(job)
            self.durations.setdefault(rule, []).append(now - start)

    def done(self) -> int:
        return sum(len(d) for d in self.durations.values())

    def seconds_left(self, now: float) -> tuple[float | None, int]:
        """Estimated wall seconds until every planned job has finished, from the rules with a
        finished job (None before any), and how many rules with jobs left have none yet (their
        time is not in the estimate, which is then a lower bound)."""
        work, untimed, timed = 0.0, 0, False
        for rule, count in self.planned.items():
            finished = self.durations.get(rule, [])
            timed = timed or bool(finished)
            left = count - len(finished)
            if left <= 0:
                continue
            if not finished:
                untimed += 1
                continue
            mean = sum(finished) / len(finished)
            # a running job has already spent part of its expected time
            spent = sum(min(now - start, mean) for r, start in self.running.values() if r == rule)
            work += left * mean - spent
        return (work / self.parallel if timed else None), untimed

    def line(self, done: int, total: int, now: float) -> str:
        """``12/54 jobs (22 %) · running: train ×2 · about 3 min left``."""
        running: dict[str, int] = {}
        for rule, _ in self.running.values():
            running[rule] = running.get(rule, 0) + 1
        parts = [f"{done}/{total} jobs ({100 * done // max(total, 1)} %)"]
        if running:
            parts.append("running: " + ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in running.items()))
        if done < total:
            left, untimed = self.seconds_left(now)
            if left is None or (untimed and left <= 0):  # nothing timed that is still to run
                parts.append("time left: estimating")
            elif untimed:
                parts.append(f"at least {duration(left)} left ({untimed} rule{'s' * (untimed > 1)} not timed yet)")
            else:
                parts.append(f"about {duration(left)} left")
        return " · ".join(parts)


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60):02d} min"
