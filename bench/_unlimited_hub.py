"""`hub` without the PutEvents quota limiter (bench/streaming_throughput.py --lift-quota): what its CPU allows.

The 1000 calls/s limit is the service's (docs/reference/personalize-api.md#quotas) and config overrides may
only lower it, so a bench that wants the hub's own ceiling against local_personalize lifts it here, in
the benchmarked process only. Usage: python bench/_unlimited_hub.py run --config FILE.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from connectors.destinations.personalize.events import PersonalizeEventsConfig  # noqa: E402
from personalize_hub.cli import main  # noqa: E402

PersonalizeEventsConfig.api_limits = dataclasses.replace(PersonalizeEventsConfig.api_limits, max_requests_per_sec=None)

if __name__ == "__main__":
    main()
