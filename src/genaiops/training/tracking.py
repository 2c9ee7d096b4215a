"""Experiment tracking with MLflow: one run per fine-tuning job.

The store defaults to SQLite and a local artifact folder inside the data directory, so a
laptop needs no MLflow server; ``finetune.tracking_uri`` points at any MLflow store for
scale-out. MLflow's telemetry is switched off before it is imported. Runs are addressed
through ``MlflowClient`` with explicit run ids (never MLflow's process-global "active run"),
so a resumed job keeps logging into the run it started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from genaiops.config import Settings
from genaiops.storage.db import private_file


def quiet_mlflow() -> None:
    """Switch MLflow's telemetry off and quieten its logs; call before any mlflow import
    (MLflow reads the telemetry variables when it is first imported)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    # MLflow logs its store migrations at INFO on first use.
    import logging

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import warnings

    # MLflow's SQL store uses a SQLAlchemy loader option that 2.1 deprecates; not ours to fix.
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")


@lru_cache(maxsize=8)
def client(uri: str) -> Any:
    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        private_file(Path(uri.removeprefix("sqlite:///")))
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class Tracker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.client = client(settings.mlflow_uri())

    def experiment_id(self) -> str:
        name = self.settings.finetune.experiment
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        root = self.settings.artifact_root()
        if "://" not in root:
            Path(root).mkdir(parents=True, exist_ok=True)
        return str(self.client.create_experiment(name, artifact_location=root))

    def start(self, run_name: str, tags: Mapping[str, str]) -> str:
        run = self.client.create_run(self.experiment_id(), run_name=run_name, tags=dict(tags))
        return str(run.info.run_id)

    def params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(
            run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        )

    def metrics(self, run_id: str, values: Mapping[str, float], step: int | None = None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ts, step or 0) for k, v in sorted(values.items())],
        )

    def artifact(self, run_id: str, path: Path, folder: str) -> str:
        """Upload ``path`` and return its artifact URI."""
        self.client.log_artifact(run_id, str(path), artifact_path=folder)
        run = self.client.get_run(run_id)
        return f"{run.info.artifact_uri}/{folder}/{path.name}"

    def artifact_dir(self, run_id: str, folder: Path, name: str) -> str:
        """Upload a folder and return its artifact URI."""
        self.client.log_artifacts(run_id, str(folder), artifact_path=name)
        run = self.client.get_run(run_id)
        return f"{run.info.artifact_uri}/{name}"

    def end(self, run_id: str, status: str) -> None:
        mlflow_status = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
        self.client.set_terminated(run_id, status=mlflow_status.get(status, "FAILED"))

    def run_metrics(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]
