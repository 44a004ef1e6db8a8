"""MLflow tracking: one parent run per study or compile, one child run per trial, nothing secret.

Runs are created through ``MlflowClient`` with explicit run ids (never the thread-local "active
run"), so Optuna worker threads and several worker processes can log children to one parent
safely (STACK.md: ``start_run(nested=True)`` loses the parent across threads).

The store may be a sqlite file, or an MLflow tracking server (``http://HOST:5000``: ``--tracking-uri``
or ``$MLFLOW_TRACKING_URI``) that every search worker reaches, with artifacts in the server's
artifact store. A server is checked once (``/health``) before anything is logged, so a wrong or
unreachable URL fails at once with one line (``program.errors.ServiceError``, password hidden)
instead of after MLflow's minutes of retries.

Everything logged passes through ``redact``: the values of API-key variables named in the LM
config, and anything that looks like a key, are replaced by ``[REDACTED]``.

Example:
    >>> import tempfile
    >>> tracker = Tracker.create(f"sqlite:///{tempfile.mkdtemp()}/mlflow.db", "doc")
    >>> parent = tracker.start("study", params={"trials": 4})
    >>> child = tracker.child(parent, "trial-0", params={"threshold": 0.2}, metrics={"accuracy": 50.0})
    >>> tracker.client.get_run(child).data.metrics
    {'accuracy': 50.0}
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from program.errors import ServiceError  # noqa: E402

__all__ = ["Tracker", "redact", "secret_values", "assert_no_secrets", "default_tracking_uri", "flatten",
           "check_tracking_uri"]

log = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
# Shapes of common API keys (OpenAI, Anthropic, HF, generic bearer-ish tokens).
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|"
                          r"AKIA[0-9A-Z]{16}|gsk_[A-Za-z0-9]{16,}|xai-[A-Za-z0-9]{16,})\b")
_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "HF_TOKEN", "TOGETHER_API_KEY",
                  "GROQ_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "XAI_API_KEY", "MISTRAL_API_KEY")


def secret_values(extra_variables: Iterable[str] = ()) -> list[str]:
    """Current values of known key variables and of ``extra_variables`` (those named by configs)."""
    names = set(_KEY_VARIABLES) | set(extra_variables) | {n for n in os.environ if n.endswith(("_API_KEY", "_TOKEN"))}
    return sorted({os.environ[n] for n in names if len(os.environ.get(n, "")) >= 6}, key=len, reverse=True)


def redact(value: Any, secrets: Iterable[str] | None = None) -> Any:
    """``value`` with every secret string replaced; works on nested dicts/lists/strings.

    Example:
        >>> redact({"note": "key sk-abcdefghijkl used"}, secrets=[])
        {'note': 'key [REDACTED] used'}
    """
    secrets = list(secret_values() if secrets is None else secrets)
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return _KEY_PATTERN.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    return value


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested configs as MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def default_tracking_uri(base_dir: str | Path = "runs") -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else a sqlite store under ``base_dir``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    path = Path(base_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / 'mlflow.db'}"


@dataclass
class Tracker:
    """Parent and child runs in one MLflow experiment, logged by explicit run id."""

    uri: str
    experiment_id: str

    @classmethod
    def create(cls, uri: str | None, experiment: str) -> Tracker:
        """The tracker of ``experiment`` (made if new) in store ``uri``; ``ServiceError`` if it is unusable."""
        from mlflow import MlflowClient

        uri = uri or default_tracking_uri()
        check_tracking_uri(uri)
        try:
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else client.create_experiment(
                experiment, artifact_location=_artifact_location(uri))
        except Exception as exc:  # MlflowException (unknown scheme, server error), a database error ...
            from optimize.search.storage import safe_url

            reason = str(exc).splitlines()[0][:300].replace(uri, safe_url(uri)) if str(exc) else type(exc).__name__
            raise ServiceError(f"Cannot use the MLflow tracking store {safe_url(uri)}: {type(exc).__name__}: "
                               f"{reason}. Fix --tracking-uri / $MLFLOW_TRACKING_URI (an MLflow server "
                               "http://HOST:5000, or sqlite:///FILE), or pass --no-mlflow.") from None
        return cls(uri=uri, experiment_id=experiment_id)

    @property
    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def start(self, name: str, *, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, str] | None = None, parent_run_id: str | None = None) -> str:
        """Create a run (a child when ``parent_run_id`` is given); returns its id. Stays open until ``end``."""
        all_tags = {"mlflow.runName": name, **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=redact(all_tags), run_name=name)
        if params:
            self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = redact(flatten(params))
        batch = [Param(k[:250], _param_value(v)) for k, v in flat.items()]
        for i in range(0, len(batch), 100):
            self.client.log_batch(run_id, params=batch[i:i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k[:250], float(v), now, step) for k, v in flatten(metrics).items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for i in range(0, len(batch), 500):
            self.client.log_batch(run_id, metrics=batch[i:i + 500])

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or directory. Text files are checked for secrets first (never upload a leak)."""
        path = Path(path)
        assert_no_secrets(path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_dict(self, run_id: str, data: Any, name: str) -> None:
        self.client.log_text(run_id, json.dumps(redact(data), indent=2, default=str), name)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def child(self, parent_run_id: str, name: str, *, params: Mapping[str, Any] | None = None,
              metrics: Mapping[str, Any] | None = None, artifacts: Iterable[str | Path] = (),
              tags: Mapping[str, str] | None = None, status: str = "FINISHED") -> str:
        """A complete child run in one call: params, metrics, artifacts, then closed."""
        run_id = self.start(name, params=params, tags=tags, parent_run_id=parent_run_id)
        if metrics:
            self.log_metrics(run_id, metrics)
        for artifact in artifacts:
            self.log_artifact(run_id, artifact)
        self.end(run_id, status)
        return run_id

    def children(self, parent_run_id: str) -> list[Any]:
        return self.client.search_runs([self.experiment_id],
                                       filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                                       max_results=10_000)


def check_tracking_uri(uri: str, timeout: float = 10.0) -> None:
    """Raise ``ServiceError`` (one line, password hidden) unless an ``http(s)://`` tracking server answers /health.

    Example:
        >>> check_tracking_uri("sqlite:////tmp/mlflow.db")  # only servers are probed
    """
    if not uri.startswith(("http://", "https://")):
        return
    import httpx

    from optimize.search.storage import safe_url

    try:
        response = httpx.get(uri.rstrip("/") + "/health", timeout=timeout)
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceError(f"The MLflow tracking server {safe_url(uri)} is not reachable ({type(exc).__name__}). "
                           "Start it (mlflow server --host 0.0.0.0 --port 5000 --backend-store-uri ...) or fix "
                           "--tracking-uri / $MLFLOW_TRACKING_URI, or pass --no-mlflow.") from None
    if response.status_code != 200:
        raise ServiceError(f"{safe_url(uri)} answered /health with HTTP {response.status_code}: it is not an MLflow "
                           "tracking server. Fix --tracking-uri / $MLFLOW_TRACKING_URI, or pass --no-mlflow.")


def _artifact_location(uri: str) -> str | None:
    """Artifacts of a sqlite store go beside its database, not into ``./mlruns`` of whatever directory."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text[:6000]


def assert_no_secrets(path: Path) -> None:
    """Raise if any file under ``path`` holds the value of an API-key variable (checked before logging)."""
    secrets = secret_values()
    if not secrets:
        return
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        if file.stat().st_size > 50_000_000:
            continue
        data = file.read_bytes()
        for secret in secrets:
            if secret.encode() in data:
                raise RuntimeError(f"Refusing to log {file} to MLflow: it contains the value of an API-key "
                                   "variable. Remove the key from that file.")
