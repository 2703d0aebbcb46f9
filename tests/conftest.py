"""Pytest root: registers the shared fixture modules (real services, local_personalize)."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.local_personalize",
    "tests.fixtures.braze_standin",
]
