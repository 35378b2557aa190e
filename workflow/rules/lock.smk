# One live run per working directory (dmbn.workdir): a run that executes jobs takes the
# directory's lock while this file is read, before Snakemake plans anything, and keeps it until it
# ends; a second run beside it is refused, naming the live one, instead of being told that the
# live run's files are incomplete (README: "Two runs in one directory").

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from dmbn.workdir import DirectoryBusy, describe, hold, holder

# Snakemake's command-line modes that execute no job (`snakemake.cli.args_to_api`); `unlock` is
# among them but is refused beside a live run like an execution, since it would admit a second.
NO_JOBS = ("deploy_sources", "lint", "list_target_rules", "list_rules", "print_compilation",
           "containerize", "generate_unit_tests", "dag", "rulegraph", "filegraph", "d3dag",
           "cleanup_metadata", "conda_cleanup_envs", "conda_create_envs_only", "list_conda_envs",
           "cleanup_shadow", "container_cleanup_images", "list_changes", "list_input_changes",
           "list_params_changes", "list_untracked", "summary", "detailed_summary", "archive",
           "delete_all_output", "delete_temp_output", "report")


def invocation(argv):
    """What this `snakemake` command does to the working directory: "run" (executes jobs),
    "unlock", "dry-run", "unlocked" (--nolock: the user opted out of locking) or "other"
    (a mode that runs no job, or a caller other than the command line)."""
    from snakemake.cli import parse_args

    try:
        _, args = parse_args(argv)  # with --profile's settings, as the command itself reads them
    except (SystemExit, Exception):
        return "other"
    if any(getattr(args, name, None) not in (None, False) for name in NO_JOBS):
        return "other"
    if args.unlock:
        return "unlock"
    if args.nolock:
        return "unlocked"
    return "dry-run" if args.dryrun else ("other" if args.touch else "run")


def hold_working_directory():
    """Take the directory's lock for a run (or an --unlock); warn a dry run beside a live run."""
    if not workflow.is_main_process:  # a job's own Snakemake (cluster node, subprocess)
        return
    mode = invocation(sys.argv[1:])
    if mode in ("run", "unlock"):
        try:
            hold(Path.cwd())
        except DirectoryBusy as error:
            raise WorkflowError(str(error)) from None
    elif mode == "dry-run" and (live := holder(Path.cwd())) is not None:
        logger.warning(
            f"A live Snakemake run holds this directory ({describe(live)}): the files it is "
            "writing show to this dry run as incomplete or still to be made; that is expected. "
            "Do not run --unlock or --rerun-incomplete while it lives."
        )


hold_working_directory()
