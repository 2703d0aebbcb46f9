"""local_personalize served inside the test's event loop, driven by aiobotocore (fixture helper check)."""

from __future__ import annotations

import pytest

from tests.fixtures.local_personalize import aio_personalize_client, local_personalize_in_process

pytestmark = pytest.mark.integration


async def test_in_process_server_answers_aiobotocore_and_keeps_state(tmp_path):
    data_dir = tmp_path / "data"
    async with local_personalize_in_process(data_dir) as url:
        async with aio_personalize_client(url) as control:
            await control.create_dataset_group(name="in-process")
    async with local_personalize_in_process(data_dir) as url:
        async with aio_personalize_client(url) as control:
            groups = (await control.list_dataset_groups())["datasetGroups"]
    assert [group["name"] for group in groups] == ["in-process"]
