"""LiveModels: campaigns activated together each serve the live model that PutEvents fold into."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from local_personalize.recipes import RecipeType
from local_personalize.serving import LiveModels


def live_model(version_arn: str) -> SimpleNamespace:
    model = SimpleNamespace(recipe_type=RecipeType.USER_PERSONALIZATION, recipe_name="aws-user-personalization")
    return SimpleNamespace(version_arn=version_arn, model=model, dataset_group_arn="group")


async def test_campaigns_activated_together_keep_their_versions_live():
    models = LiveModels(service=None)
    loaded = asyncio.Event()

    async def load(version_arn: str):
        await loaded.wait()
        models.versions[version_arn] = live = live_model(version_arn)
        return live

    models._load_version = load
    activations = [asyncio.create_task(models.activate({"campaignArn": f"c{n}", "solutionVersionArn": f"v{n}"}))
                   for n in (1, 2)]
    await asyncio.sleep(0)
    loaded.set()  # both loads finish before either activation resumes: the first must not release the second's
    await asyncio.gather(*activations)
    for n in (1, 2):
        assert models.campaigns[f"c{n}"].live is models.versions[f"v{n}"]
