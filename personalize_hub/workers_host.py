"""What the batch workers use of the application: the config loader and the connector registry.

Workers find this module through the `personalize_hub.workers` entry point (pyproject.toml,
workers/context.py), so the application sits above them and they import nothing of it.
"""

from personalize_hub.config import load_config
from personalize_hub.registry import build_destination

__all__ = ["build_destination", "load_config"]
