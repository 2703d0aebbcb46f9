"""The server's state: the store thread, the job processes and the live models, and how work moves between them.

SQLite is used from one dedicated thread, so no request blocks the event loop on disk and no two
requests race on a write. Training, imports and batch jobs run in their own processes (CPU-bound; they
open the same database file, see jobs.py); each records its own outcome, and the server reacts when one finishes.
"""

from __future__ import annotations

from collections import OrderedDict
import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from local_personalize import attribution, jobs
from local_personalize.control import OPERATIONS, ControlContext
from local_personalize.control import deletions as deletion
from local_personalize.control.common import ACTIVE, CREATE_FAILED, UNFINISHED
from local_personalize.ingest import HANDLERS as INGEST_HANDLERS
from local_personalize.serving import LiveModels
from local_personalize.settings import Settings
from local_personalize.store import Store
from local_personalize.threads import job_environment

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Background work by kind → the job-process function that does it (see ControlContext.defer).
RESUMABLE_KINDS = {"dataset-import-job": "import", "solution-version": "train", "recommender": "train",
                   "batch-inference-job": "batch-inference-job", "batch-segment-job": "batch-segment-job",
                   "data-deletion-job": "data-deletion-job", "dataset-export-job": "dataset-export-job"}
# Data deletion jobs have their own status words (deletion.py); every other job uses the CREATE … forms.
UNFINISHED_STATUSES = (*UNFINISHED, deletion.PENDING, deletion.IN_PROGRESS)
FAILED_STATUS = {"data-deletion-job": deletion.FAILED}
MAX_REMEMBERED_RECOMMENDATIONS = 200_000  # about 30 MB of ids


class Service:
    """Everything one local_personalize server holds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store_thread = ThreadPoolExecutor(1, thread_name_prefix="store")
        self.store = Store(settings.db_path)
        self._job_slots = asyncio.Semaphore(settings.job_workers)
        self.models = LiveModels(self)
        # recommendationId → the campaign or recommender ARN that answered it: PutEvents carrying the id and no
        # eventAttributionSource are attributed to it ("Amazon Personalize automatically determines the source
        # campaign or recommender", https://docs.aws.amazon.com/personalize/latest/dg/event-metrics.html). The
        # newest MAX_REMEMBERED_RECOMMENDATIONS, in memory.
        self.recommendation_sources: OrderedDict[str, str] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()

    async def db(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` on the store thread."""
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, function, *args)

    async def control(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        context = ControlContext(self.store, self.settings)
        answer = await self.db(OPERATIONS[operation], context, body)
        for work, arn in context.deferred:
            self.start(work, arn)
        return answer

    def remember_recommendation(self, recommendation_id: str, source_arn: str) -> None:
        self.recommendation_sources[recommendation_id] = source_arn
        if len(self.recommendation_sources) > MAX_REMEMBERED_RECOMMENDATIONS:
            self.recommendation_sources.popitem(last=False)

    def _attribute_to_recommendations(self, body: dict[str, Any]) -> None:
        """An event without eventAttributionSource but with a known recommendationId gets its source (both given:
        eventAttributionSource wins, event-metrics.html)."""
        for event in body["eventList"]:
            source = self.recommendation_sources.get(event.get("recommendationId") or "")
            if source is not None and not event.get("metricAttribution"):
                event["metricAttribution"] = {"eventAttributionSource": source}

    async def ingest(self, operation: str, body: dict[str, Any]) -> None:
        if operation == "PutEvents":
            self._attribute_to_recommendations(body)
        ingested = await self.db(INGEST_HANDLERS[operation], self.store, body)
        if ingested.dataset_type == "INTERACTIONS":
            self.models.observe(ingested)
        elif ingested.dataset_type == "ITEMS":
            self.models.records_changed(ingested.dataset_group_arn)

    def start(self, work: str, arn: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(work, arn), name=f"{work} {arn}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, work: str, arn: str) -> None:
        try:
            if work in jobs.WORK_KINDS:
                await self._run_job(work, arn)
            elif work == "campaign":
                await self._activate_campaign(arn)
            elif work == "campaign-update":
                await self._update_campaign(arn)
            elif work == "campaign-delete":
                self.models.drop(arn)
            elif work == "recommender-serve":
                await self._serve_recommender(arn)
        except Exception:
            logger.exception("%s of %s failed", work, arn)

    async def _run_job(self, work: str, arn: str) -> None:
        async with self._job_slots:
            process = await asyncio.create_subprocess_exec(*jobs.command(work, arn, self.settings),
                                                           env=job_environment())
            try:
                exit_code = await process.wait()
            except asyncio.CancelledError:
                # Server shutdown: the job is resumed on the next start (it is still unfinished in the store).
                process.terminate()
                raise
        if exit_code != 0:
            logger.error("job process for %s exited with %s", arn, exit_code)
            resource = await self.db(Store.get_resource, self.store, arn)
            if resource is not None and resource.status in UNFINISHED_STATUSES:
                await self.db(lambda: self.store.update_resource(
                    arn, status=FAILED_STATUS.get(work, CREATE_FAILED),
                    failureReason=f"Job process exited with status {exit_code}"))
            return
        logger.info("%s %s finished", work, arn)
        if work == "import":
            job = await self.db(Store.get_resource, self.store, arn)
            dataset = await self.db(Store.get_resource, self.store, job.doc["datasetArn"]) if job else None
            if dataset is not None:
                self.models.records_changed(dataset.parent_arn)
        elif work == "train":
            resource = await self.db(Store.get_resource, self.store, arn)
            if resource is not None and resource.kind == "recommender":
                await self._serve_recommender(arn)
            else:
                await self._sync_campaigns(arn)
        elif work == "data-deletion-job":
            job = await self.db(Store.get_resource, self.store, arn)
            if job is not None and job.status == deletion.IN_PROGRESS and "numDeleted" in job.doc:
                await self.models.forget_deleted_users(job.doc["datasetGroupArn"])
                await self.db(lambda: self.store.update_resource(arn, status=deletion.COMPLETED))

    async def _activate_campaign(self, arn: str) -> None:
        campaign = await self.db(Store.get_resource, self.store, arn)
        if campaign is None:
            return
        try:
            await self.models.activate(campaign.doc)
        except Exception as error:  # a missing or unreadable model file fails the campaign with the reason
            logger.exception("campaign %s failed to load", arn)
            await self.db(lambda: self.store.update_resource(arn, status=CREATE_FAILED, failureReason=str(error)))
            return
        await self.db(lambda: self.store.update_resource(arn, status=ACTIVE))

    async def _serve_recommender(self, arn: str) -> None:
        """Load a trained recommender's model and serve it (creation, StartRecommender, restart)."""
        recommender = await self.db(Store.get_resource, self.store, arn)
        if recommender is None or not recommender.doc.get("_trained") or recommender.status == CREATE_FAILED:
            return
        serving = {"campaignArn": arn, "solutionVersionArn": arn, "recipeArn": recommender.doc["recipeArn"],
                   "campaignConfig": recommender.doc["recommenderConfig"]}
        try:
            await self.models.activate(serving)
        except Exception as error:  # a missing or unreadable model file fails the recommender with the reason
            logger.exception("recommender %s failed to load", arn)
            await self.db(lambda: self.store.update_resource(arn, status=CREATE_FAILED, failureReason=str(error)))
            return
        if recommender.status != ACTIVE:
            await self.db(lambda: self.store.update_resource(arn, status=ACTIVE))

    async def _update_campaign(self, arn: str) -> None:
        campaign = await self.db(Store.get_resource, self.store, arn)
        if campaign is None:
            return
        update = campaign.doc["latestCampaignUpdate"]
        new_doc = {**campaign.doc, "solutionVersionArn": update["solutionVersionArn"],
                   "minProvisionedTPS": update["minProvisionedTPS"], "campaignConfig": update["campaignConfig"]}
        try:
            await self.models.activate(new_doc)
        except Exception as error:  # the campaign keeps serving its previous version
            await self.db(lambda: self.store.update_resource(
                arn, latestCampaignUpdate={**update, "status": CREATE_FAILED, "failureReason": str(error)}))
            return
        await self.db(lambda: self.store.update_resource(
            arn, solutionVersionArn=update["solutionVersionArn"], minProvisionedTPS=update["minProvisionedTPS"],
            campaignConfig=update["campaignConfig"], latestCampaignUpdate={**update, "status": ACTIVE}))

    async def _sync_campaigns(self, version_arn: str) -> None:
        """Campaigns with syncWithLatestSolutionVersion move to a version of their solution once it is ACTIVE."""
        version = await self.db(Store.get_resource, self.store, version_arn)
        if version is None or version.status != ACTIVE:
            return
        campaigns = await self.db(lambda: self.store.list_resources("campaign", version.doc["solutionArn"]))
        for campaign in campaigns:
            if campaign.status == ACTIVE and campaign.doc["campaignConfig"].get("syncWithLatestSolutionVersion"):
                update = {"solutionVersionArn": version_arn, "minProvisionedTPS": campaign.doc["minProvisionedTPS"],
                          "campaignConfig": campaign.doc["campaignConfig"], "status": "CREATE PENDING"}
                await self.db(lambda arn=campaign.arn: self.store.update_resource(arn, latestCampaignUpdate=update))
                await self._update_campaign(campaign.arn)

    async def _publish_attribution_metrics(self) -> None:
        """Each period, what PutEvents added to the metric attributions' windows goes to CloudWatch."""
        while True:
            await asyncio.sleep(self.settings.attribution_report_secs)
            for found in await self.db(lambda: self.store.list_resources("metric-attribution")):
                rows = await self.db(self.store.take_unpublished_attribution_metrics, found.arn)
                if not rows:
                    continue
                try:
                    await asyncio.to_thread(attribution.put_cloudwatch_metrics, self.settings, found, rows)
                except Exception:  # CloudWatch unreachable: the deltas go out with the next period
                    logger.exception("metrics of %s not sent to CloudWatch", found.arn)
                    await self.db(self.store.unpublish_attribution_metrics, found.arn, rows)

    async def startup(self) -> None:
        """Resume work a previous run left unfinished and serve the campaigns that were ACTIVE."""
        task = asyncio.get_running_loop().create_task(self._publish_attribution_metrics(), name="metric attribution")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        for kind, work in RESUMABLE_KINDS.items():
            for resource in await self.db(lambda k=kind: self.store.list_resources(k)):
                if resource.status in UNFINISHED_STATUSES:
                    self.start(work, resource.arn)
        for campaign in await self.db(lambda: self.store.list_resources("campaign")):
            if campaign.status in UNFINISHED or campaign.status == ACTIVE:
                self.start("campaign", campaign.arn)
        for recommender in await self.db(lambda: self.store.list_resources("recommender")):
            if recommender.status in (ACTIVE, "START IN_PROGRESS"):
                self.start("recommender-serve", recommender.arn)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.db(self.store.close)
        self._store_thread.shutdown(wait=True)
