"""The one error a filter raises: its message is sent back as InvalidInputException."""


class FilterError(ValueError):
    """A filter expression or its filterValues is invalid; str(error) says why."""
