"""``snakemake --logger dmbn`` (the local profile sets it): a quiet terminal for a study.

The terminal shows one progress line for the study (jobs done, the rules running, an estimate of
the time left from finished jobs of the same rule: ``progress.py``), and every warning and error
in full, with the failed job's log. The job blocks and the jobs' per-epoch lines stay in the
per-job logs (``results/logs/``) and in Snakemake's own log (``.snakemake/log/``): this handler
asks the jobs to echo only warnings (``DMBN_JOB_ECHO=warning``, read by ``dmbn.logs``).
``--verbose``, or leaving out ``--logger dmbn``, brings everything back.

Snakemake finds logger plugins by their package name (``snakemake_logger_plugin_*``); this one
ships in dmbn's distribution, so ``pip install -e .`` (``make``) makes ``--logger dmbn`` known.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from .progress import StudyProgress

# Snakemake's messages that a quiet terminal leaves to the log file: repeated once per
# scheduling round or job, or describing the machine rather than the study.
ROUTINE = ("Select jobs to execute", "Building DAG of jobs", "Using shell:", "Provided cores",
           "Rules claiming more threads", "Assuming unrestricted shared filesystem", "host:",
           "Job stats:", "Finished jobid", "Execute ", "Config file ")


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    pass


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        from snakemake.logging import DefaultFilter, DefaultFormatter

        settings = self.common_settings
        self.verbose = bool(settings.verbose)
        self.passthrough_filter = DefaultFilter(settings.quiet, settings.debug_dag, settings.verbose,
                                                settings.dryrun, settings.printshellcmds)
        self.passthrough_format = DefaultFormatter(settings.quiet, settings.show_failed_logs)
        self.stream = sys.stderr
        self.on_tty = self.stream.isatty()
        self.progress = StudyProgress()
        self.pending_line = False  # a progress line without its newline is on screen
        if not self.verbose:
            os.environ["DMBN_JOB_ECHO"] = "warning"  # inherited by local jobs

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.verbose:
                self._print_passthrough(record)
            else:
                self._emit_quietly(record)
        except Exception:  # a logger must not stop the workflow
            self.handleError(record)

    def _emit_quietly(self, record: logging.LogRecord) -> None:
        event, now = getattr(record, "event", None), time.time()
        if event == LogEvent.RUN_INFO and not self.common_settings.dryrun:
            self.progress.plan(getattr(record, "stats", {}))
        elif event == LogEvent.JOB_INFO and not self.common_settings.dryrun:
            self.progress.started(record.jobid, record.rule_name, now)
        elif event == LogEvent.JOB_FINISHED:
            self.progress.finished(record.job_id, now)
        elif event == LogEvent.PROGRESS:
            self._show_progress(self.progress.line(record.done, record.total, now), record.done == record.total)
        elif record.levelno >= logging.WARNING or event in (LogEvent.JOB_ERROR, LogEvent.GROUP_ERROR, LogEvent.ERROR):
            self._print_passthrough(record)
        elif event in (None, LogEvent.RUN_INFO) and not self._routine(record):
            self._print_passthrough(record)

    def _routine(self, record: logging.LogRecord) -> bool:
        message = record.getMessage() if record.msg is not None else ""
        return not message.strip() or message.lstrip().startswith(ROUTINE)

    def _show_progress(self, line: str, last: bool) -> None:
        if self.on_tty:
            self.stream.write("\r\033[K" + line + ("\n" if last else ""))
            self.pending_line = not last
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _print_passthrough(self, record: logging.LogRecord) -> None:
        if not self.passthrough_filter.filter(record):
            return
        text = self.passthrough_format.format(record)
        if not text:
            return
        if self.pending_line:
            self.stream.write("\n")
            self.pending_line = False
        self.stream.write(text.rstrip("\n") + "\n")
        self.stream.flush()
