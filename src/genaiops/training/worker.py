"""``python -m genaiops.training.worker JOB_ID --settings FILE``: train one claimed job.

The server's job runner starts this process for each job (see ``training.service``); the
settings come as the JSON the server was started with, so the worker sees the same data
directory, database and tracking store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from genaiops.config import Settings
from genaiops.storage.db import Database
from genaiops.training import runner
from genaiops.training.jobs import JobStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genaiops.training.worker")
    parser.add_argument("job_id")
    parser.add_argument("--settings", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = Settings.model_validate_json(args.settings.read_text())
    db = Database(settings.database_url())
    job = JobStore(db).get(args.job_id)
    if job is None or job.status != "running":
        print(f"job {args.job_id} is not running", file=sys.stderr)  # noqa: T201
        return 2
    # The job names its actual trainer (this process), for operators and ``jobs show``.
    JobStore(db).update(job.id, worker=runner.worker_name())
    final = runner.run(settings, db, job)
    print(f"job {job.id}: {final.status}")  # noqa: T201
    return 0 if final.status in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
