"""`python -m local_personalize` / `local-personalize`: run the offline Personalize server."""

from __future__ import annotations

from local_personalize.threads import limit_blas_threads_for_serving

limit_blas_threads_for_serving()  # before numpy is imported, see threads.py

import argparse  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402

import uvicorn  # noqa: E402

from local_personalize.app import LocalPersonalize  # noqa: E402
from local_personalize.settings import Settings  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="local-personalize", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--data", type=Path, required=True, help="directory for the SQLite store and models")
    parser.add_argument("--account-id", default="000000000000", help="account id used in ARNs")
    parser.add_argument("--region", default="us-east-1", help="region used in ARNs")
    parser.add_argument("--s3-endpoint-url", default=None,
                        help="S3 endpoint for imports and batch jobs (default: boto3's, e.g. AWS_ENDPOINT_URL)")
    parser.add_argument("--provisioning-delay-secs", type=float, default=0.0,
                        help="how long dataset groups, schemas, datasets, ... stay CREATE PENDING")
    parser.add_argument("--job-workers", type=int, default=1, help="processes for training, imports and batch jobs")
    parser.add_argument("--file-root", action="append", default=[], metavar="DIR",
                        help="a directory file:// data locations may use besides --data (repeatable)")
    parser.add_argument("--max-body-bytes", type=int, default=Settings.max_body_bytes,
                        help="largest request body accepted (413 above it)")
    parser.add_argument("--cloudwatch-endpoint-url", default=None,
                        help="CloudWatch endpoint for metric attributions (default: the S3 endpoint)")
    parser.add_argument("--attribution-report-secs", type=float, default=Settings.attribution_report_secs,
                        help="how often metric attributions send PutEvents metrics to CloudWatch")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings(data_dir=args.data, host=args.host, port=args.port, account_id=args.account_id,
                        region=args.region, s3_endpoint_url=args.s3_endpoint_url,
                        provisioning_delay_secs=args.provisioning_delay_secs, job_workers=args.job_workers,
                        file_roots=tuple(str(root) for root in args.file_root), max_body_bytes=args.max_body_bytes,
                        cloudwatch_endpoint_url=args.cloudwatch_endpoint_url,
                        attribution_report_secs=args.attribution_report_secs)
    app = LocalPersonalize(settings)
    # access_log off: the app logs its own line per request, naming the operation.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                lifespan="on", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
