"""Settings of one local_personalize server: where it listens, keeps data, and what its ARNs say."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Command-line options of `python -m local_personalize`, shared by the server and its job processes."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8001
    account_id: str = "000000000000"
    region: str = "us-east-1"
    s3_endpoint_url: str | None = None  # None: boto3's own resolution (AWS_ENDPOINT_URL, then AWS)
    # Seconds a simple resource (dataset group, schema, ...) reports CREATE PENDING before ACTIVE.
    provisioning_delay_secs: float = 0.0
    # Processes that run training, import and batch jobs (the real service runs 5 of each,
    # docs/reference/personalize-api.md#quotas).
    job_workers: int = 1
    # Directories besides data_dir that file:// data locations may name (`--file-root`, repeatable).
    file_roots: tuple[str, ...] = ()
    # Largest request body read. The largest modeled request, PutItems (10 items of properties up to
    # 32000 characters: botocore personalize-events ItemList, ItemProperties), stays far below 1 MiB.
    max_body_bytes: int = 1 << 20
    # Where metric attributions send PutEvents metrics (None: the S3 endpoint, e.g. one moto for both).
    cloudwatch_endpoint_url: str | None = None
    # How often they are sent; AWS aggregates them over 15 minutes (metric-attribution-results.html).
    attribution_report_secs: float = 900.0

    @property
    def db_path(self) -> Path:
        return self.data_dir / "local_personalize.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def allowed_file_roots(self) -> tuple[Path, ...]:
        return (self.data_dir, *(Path(root) for root in self.file_roots))

    def arn(self, resource: str) -> str:
        """`arn:aws:personalize:<region>:<account>:<resource>` (docs/reference/personalize-api.md#arns)."""
        return f"arn:aws:personalize:{self.region}:{self.account_id}:{resource}"
