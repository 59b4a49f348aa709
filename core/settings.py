"""One settings class for the API, the local back end and the operator, read from the environment.

The seed's unprefixed names (PORT, MAX_WORKERS, QUEUE_SIZE, DEFAULT_LANGUAGE) are kept; everything
else is MONACO_-prefixed. The README's configuration table lists every field below.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from monaco.core.callback import Policy
from monaco.core.languages import SANDBOX_PATH, Registry

# A Localhost profile's path under the kubelet's seccomp root: relative, no component starting with a dot.
# The playground's path: `/`, `/play`, `/play/`, `/a/b/`; empty is none.
PLAYGROUND_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*/?")
SECCOMP_LOCALHOST_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


def _env(name: str, *, seed: bool = False) -> Any:
    names = (name, f"MONACO_{name}") if seed else (f"MONACO_{name}",)
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=False)

    # --- the service
    backend: Literal["local", "kubernetes"] = Field("local", validation_alias=_env("BACKEND"))
    host: str = Field("127.0.0.1", validation_alias=_env("HOST"))
    port: int = Field(8080, ge=1, le=65535, validation_alias=_env("PORT", seed=True))
    max_workers: int = Field(3, ge=1, le=1024, validation_alias=_env("MAX_WORKERS", seed=True))
    queue_size: int = Field(100, ge=1, le=1_000_000, validation_alias=_env("QUEUE_SIZE", seed=True))
    default_language: str = Field("python", validation_alias=_env("DEFAULT_LANGUAGE", seed=True))
    languages_file: Path | None = Field(None, validation_alias=_env("LANGUAGES_FILE"))
    max_code_bytes: int = Field(64 * 1024, ge=1, validation_alias=_env("MAX_CODE_BYTES"))
    max_input_bytes: int = Field(1024 * 1024, ge=0, validation_alias=_env("MAX_INPUT_BYTES"))
    output_limit_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, validation_alias=_env("OUTPUT_LIMIT_BYTES")
    )
    wait_max_seconds: float = Field(60, ge=0, validation_alias=_env("WAIT_MAX_SECONDS"))
    cors_origins: str = Field("", validation_alias=_env("CORS_ORIGINS"))
    log_json: bool = Field(False, validation_alias=_env("LOG_JSON"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    # the path of the browser playground (api/playground.py); empty turns it off
    playground_path: str = Field("/", validation_alias=_env("PLAYGROUND_PATH"))
    # the compatibility APIs (api/compat/): Judge0 CE 1.13's under /judge0, Piston v2's at /api/v2/
    judge0_api: bool = Field(True, validation_alias=_env("JUDGE0_API"))
    piston_api: bool = Field(True, validation_alias=_env("PISTON_API"))

    # --- the HTTP boundary: who may call, and how long a client may take to send a request
    # comma-separated Host names the API answers (`*.example.com` for subdomains, `*` for any); empty
    # means the loopback names when MONACO_HOST is a loopback address, else `*`
    allowed_hosts: str = Field("", validation_alias=_env("ALLOWED_HOSTS"))
    header_timeout_seconds: float = Field(10, gt=0, le=3600, validation_alias=_env("HEADER_TIMEOUT_SECONDS"))
    body_timeout_seconds: float = Field(60, gt=0, le=3600, validation_alias=_env("BODY_TIMEOUT_SECONDS"))
    max_connections: int = Field(512, ge=1, le=1_000_000, validation_alias=_env("MAX_CONNECTIONS"))

    # --- callbacks (core/callback.py): off while the allowlist is empty
    # comma-separated hosts Monaco may POST results to: names, `*.example.com`, IP addresses, CIDRs
    callback_allow: str = Field("", validation_alias=_env("CALLBACK_ALLOW"))
    # comma-separated CIDRs never called (the cluster's pod and service networks, the sandbox network),
    # besides loopback, link-local, multicast and the Kubernetes API, which are always refused
    callback_deny: str = Field("", validation_alias=_env("CALLBACK_DENY"))
    callback_attempts: int = Field(5, ge=1, le=20, validation_alias=_env("CALLBACK_ATTEMPTS"))
    # the pause after the first failed attempt; it doubles after each further one (with +-50% jitter)
    callback_backoff_seconds: float = Field(8, gt=0, le=3600, validation_alias=_env("CALLBACK_BACKOFF_SECONDS"))
    callback_timeout_seconds: float = Field(5, gt=0, le=60, validation_alias=_env("CALLBACK_TIMEOUT_SECONDS"))

    # --- the embedded local back end
    data_dir: Path = Field(
        default_factory=lambda: Path("/var/lib/monaco") if os.geteuid() == 0 else Path.home() / ".local/state/monaco",
        validation_alias=_env("DATA_DIR"),
    )
    db_path: Path | None = Field(None, validation_alias=_env("DB_PATH"))
    retention_hours: float = Field(168, gt=0, validation_alias=_env("RETENTION_HOURS"))
    sandbox: Literal["auto", "unshare", "none"] = Field("auto", validation_alias=_env("SANDBOX"))
    allow_unisolated: bool = Field(False, validation_alias=_env("ALLOW_UNISOLATED"))
    sandbox_dir: Path | None = Field(None, validation_alias=_env("SANDBOX_DIR"))
    sandbox_uid_base: int = Field(61000, ge=1000, validation_alias=_env("SANDBOX_UID_BASE"))
    sandbox_tmp_mb: int = Field(64, ge=1, validation_alias=_env("SANDBOX_TMP_MB"))

    # --- Kubernetes (API back end and operator)
    namespace: str = Field("monaco-sandbox", validation_alias=_env("NAMESPACE"))
    job_deadline_slack_seconds: int = Field(15, ge=1, validation_alias=_env("JOB_DEADLINE_SLACK_SECONDS"))
    start_deadline_seconds: int = Field(120, ge=5, validation_alias=_env("START_DEADLINE_SECONDS"))
    finished_ttl_seconds: int = Field(86400, ge=60, validation_alias=_env("FINISHED_TTL_SECONDS"))
    runtime_class_name: str | None = Field(None, validation_alias=_env("RUNTIME_CLASS_NAME"))
    sandbox_node_selector: dict[str, str] = Field(default_factory=dict, validation_alias=_env("SANDBOX_NODE_SELECTOR"))
    sandbox_tolerations: list[dict[str, Any]] = Field(
        default_factory=list, validation_alias=_env("SANDBOX_TOLERATIONS")
    )
    sandbox_affinity: dict[str, Any] = Field(default_factory=dict, validation_alias=_env("SANDBOX_AFFINITY"))
    image_pull_secrets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("IMAGE_PULL_SECRETS")
    )
    sandbox_run_as_user: int = Field(65534, ge=1, validation_alias=_env("SANDBOX_RUN_AS_USER"))
    sandbox_work_mb: int = Field(64, ge=1, validation_alias=_env("SANDBOX_WORK_MB"))
    # CPU of each sandbox container (requests == limits): a Kubernetes quantity such as 500m or 1.
    sandbox_cpu: str = Field("500m", pattern=r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$", validation_alias=_env("SANDBOX_CPU"))
    # Seccomp profile of sandbox pods: RuntimeDefault, or the path of a Localhost profile under the kubelet's
    # seccomp root, such as monaco/sandbox-v1.json (core/seccomp.py; the chart's seccompInstaller puts it there).
    sandbox_seccomp_profile: str = Field("RuntimeDefault", validation_alias=_env("SANDBOX_SECCOMP_PROFILE"))
    sandbox_labels: dict[str, str] = Field(default_factory=dict, validation_alias=_env("SANDBOX_LABELS"))
    sandbox_annotations: dict[str, str] = Field(default_factory=dict, validation_alias=_env("SANDBOX_ANNOTATIONS"))
    # Warm sandbox pools: idle sandbox pods kept ready per language, e.g. {"python": 2}; empty: cold path only.
    warm_pool: Annotated[dict[str, Annotated[int, Field(ge=0, le=256)]], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("WARM_POOL")
    )
    # While submissions of a pooled language wait, its pool grows by up to this many pods above its size
    # (one per waiting submission), and shrinks back once the queue is gone; e.g. {"python": 6}.
    warm_pool_burst: Annotated[dict[str, Annotated[int, Field(ge=0, le=256)]], NoDecode] = Field(
        default_factory=dict, validation_alias=_env("WARM_POOL_BURST")
    )
    # How long a submission that fits a pool waits for one of its pods that is starting, before it takes the
    # cold path instead; 0: never waits (an empty pool means the cold path at once).
    warm_pool_wait_seconds: float = Field(10.0, ge=0, le=300, allow_inf_nan=False,
                                          validation_alias=_env("WARM_POOL_WAIT_SECONDS"))
    # An idle pool pod older than this is replaced (a fresh one is cheap; an old one may sit on a drained node).
    warm_pool_max_idle_seconds: int = Field(900, ge=60, le=86400, validation_alias=_env("WARM_POOL_MAX_IDLE_SECONDS"))
    health_port: int = Field(8081, ge=1, le=65535, validation_alias=_env("HEALTH_PORT"))
    # The operator's Prometheus endpoint (its admission loop's health; warm pool size, idle, claims, misses, claim
    # latency); 0: none. The chart serves it on 8082.
    metrics_port: int = Field(0, ge=0, le=65535, validation_alias=_env("METRICS_PORT"))

    @field_validator("sandbox_node_selector", "sandbox_tolerations", "sandbox_affinity", mode="before")
    @classmethod
    def _json_or_empty(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else None
        return value

    @field_validator("warm_pool", "warm_pool_burst", mode="before")
    @classmethod
    def _json_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    @field_validator("runtime_class_name", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("sandbox_seccomp_profile")
    @classmethod
    def _seccomp_profile(cls, value: str) -> str:
        if value == "RuntimeDefault" or (value != "Unconfined" and SECCOMP_LOCALHOST_PATH.fullmatch(value)):
            return value
        raise ValueError(
            f"{value!r} is neither RuntimeDefault nor a profile path under the kubelet's seccomp root such as "
            "monaco/sandbox-v1.json (relative, no '..', letters, digits, '.', '_' and '-'); Unconfined is not offered"
        )

    @field_validator("playground_path")
    @classmethod
    def _playground_path(cls, value: str) -> str:
        value = value.strip()
        if PLAYGROUND_PATH.fullmatch(value) and not any(part.strip(".") == "" for part in value.split("/") if part):
            return value
        raise ValueError(
            f"{value!r} is not a path for the playground: use one such as / or /play/ (letters, digits, '.', '_', "
            "'~' and '-' between slashes, no '..'), or nothing to turn it off"
        )

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("callback_allow", "callback_deny")
    @classmethod
    def _callback_lists(cls, value: str, info: ValidationInfo) -> str:
        Policy.parse(value) if info.field_name == "callback_allow" else Policy.parse("", value)
        return value

    @cached_property
    def callbacks(self) -> Policy:
        """Where callbacks may go; the Kubernetes API's own address (in a pod) is always refused."""
        return Policy.parse(
            self.callback_allow, self.callback_deny, os.environ.get("KUBERNETES_SERVICE_HOST"),
            attempts=self.callback_attempts, backoff_seconds=self.callback_backoff_seconds,
            timeout_seconds=self.callback_timeout_seconds,
        )  # fmt: skip

    @property
    def database(self) -> Path:
        return self.db_path or self.data_dir / "db" / "monaco.db"

    @property
    def sandboxes(self) -> Path:
        """Per-run dirs; never under /tmp, which every sandbox covers with a tmpfs of its own."""
        return self.sandbox_dir or self.data_dir / "sandboxes"

    @cached_property
    def registry(self) -> Registry:
        """The languages this service offers: on the local back end, those whose toolchain is installed."""
        registry = Registry.load(self.languages_file)
        return registry.installed(SANDBOX_PATH) if self.backend == "local" else registry

    @property
    def allowed_host_list(self) -> list[str]:
        listed = [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]
        if listed:
            return listed
        if not _is_loopback(self.host):
            return ["*"]
        return list(dict.fromkeys(["localhost", "127.0.0.1", "[::1]", _bracketed(self.host)]))

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


def _is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bracketed(host: str) -> str:
    """A host as it appears in a Host header: IPv6 addresses in brackets."""
    host = host.strip("[]").lower()
    return f"[{host}]" if ":" in host else host
