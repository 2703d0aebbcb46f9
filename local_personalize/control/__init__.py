"""The control plane (`AmazonPersonalize.<Op>`): OPERATIONS maps each supported op to its handler."""

from local_personalize.control import campaigns, datasets, groups, jobs, solutions, tags  # noqa: F401  (registers)
from local_personalize.control import attributions, deletions  # noqa: F401  (registers)
from local_personalize.control.common import OPERATIONS, ControlContext

__all__ = ["OPERATIONS", "ControlContext"]
