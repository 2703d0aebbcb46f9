"""The control plane (`AmazonPersonalize.<Op>`): OPERATIONS maps each supported op to its handler."""

from local_personalize.control import (  # noqa: F401  (registers)
    attributions, campaigns, datasets, deletions, exports, groups, jobs, recommenders, solutions, tags)
from local_personalize.control.common import OPERATIONS, ControlContext

__all__ = ["OPERATIONS", "ControlContext"]
