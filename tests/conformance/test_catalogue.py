"""One contract for every connector in CATALOGUE: naming, documented config, a working example.

Settlement and batch limits, for every destination: test_settlement.py.
"""

from __future__ import annotations

import re

import pytest

from connectors import CATALOGUE
from hub.connector import Context, Source
from personalize_hub import registry
from tests.conformance.harness import example_config

IDS = [registry.type_name(c) for c in CATALOGUE]


@pytest.mark.parametrize("cls", CATALOGUE, ids=IDS)
def test_type_matches_module_path_and_class_names(cls):
    type_ = registry.type_name(cls)
    match = re.fullmatch(r"connectors\.(sources|destinations)\.(.+)", cls.__module__)
    assert match, f"{cls.__name__} must live under connectors.sources or connectors.destinations"
    assert match.group(2).replace(".", "_") == type_, f"type {type_!r} must equal its module path"
    assert (match.group(1) == "sources") == issubclass(cls, Source)
    assert cls.Config.__name__ == f"{cls.__name__}Config"
    assert re.fullmatch(r"[a-z][a-z0-9_]*", type_)


def test_type_names_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("cls", CATALOGUE, ids=IDS)
def test_config_is_documented(cls):
    assert (cls.__doc__ or "").strip() and (cls.Config.__doc__ or "").strip()
    undocumented = [n for n, f in cls.Config.model_fields.items() if n != "type" and not f.description]
    assert not undocumented, f"fields without description: {undocumented}"


@pytest.mark.parametrize("cls", CATALOGUE, ids=IDS)
def test_example_validates_and_builds(cls):
    config = example_config(cls)
    built = (registry.build_source if issubclass(cls, Source) else registry.build_destination)(config, Context())
    assert isinstance(built, cls)

