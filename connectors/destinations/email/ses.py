"""SES transport for the email destination: SESv2 SendEmail with the raw MIME message, via connectors.aws."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.destinations.aws_service import ServiceClient
from connectors.aws import AwsClients
from hub.errors import RejectedError, RetryableError

# Call-level errors (docs/reference/email.md#amazon-ses-v2): throttling is retryable, the rest is not.
THROTTLING = {"TooManyRequestsException", "LimitExceededException", "Throttling", "ThrottlingException"}
TRANSIENT = {"InternalFailure", "ServiceUnavailable", "InternalServerError", "RequestTimeout"}
# Email tag values: letters, digits, '_' and '-', at most 256 characters (SESv2 MessageTag).
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class SesSettings(BaseModel):
    """Amazon SES through the v2 API (SigV4 credentials from the standard AWS chain)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["ses"] = Field(description="ses")
    region: str | None = Field(None, description="SES region; default: the hub's aws.region.")
    endpoint_url: str | None = Field(None, description="Endpoint override; default: the hub's aws.endpoint_url.")
    configuration_set: str | None = Field(
        None, description="Configuration set with event publishing for delivery/bounce feedback (docs/reference/email.md#amazon-ses-v2)."
    )


class SesTransport:
    """SendEmail with Raw content: one personalised message per call, our headers kept."""

    def __init__(self, settings: SesSettings, aws: AwsClients | None):
        self.settings = settings
        self._client = ServiceClient("sesv2", aws, region=settings.region, endpoint_url=settings.endpoint_url)

    async def start(self) -> None:
        await self._client.get()

    async def close(self) -> None:
        await self._client.close()

    async def send(self, message: EmailMessage, sender: str, recipient: str, tags: dict[str, str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

        client = await self._client.get()
        params: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [recipient]},
            "Content": {"Raw": {"Data": message.as_bytes()}},
            "EmailTags": [{"Name": k, "Value": _TAG_UNSAFE.sub("_", v)[:256] or "_"} for k, v in tags.items()],
        }
        if self.settings.configuration_set:
            params["ConfigurationSetName"] = self.settings.configuration_set
        try:
            await client.send_email(**params)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            text = f"SES {code}: {err.response.get('Error', {}).get('Message', err)}"
            if code in THROTTLING:
                raise RetryableError(text, throttled=True) from err
            if code in TRANSIENT or err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                # An error answer is a definite failure: SES did not take the message
                # (docs/reference/idempotency.md#per-destination).
                raise RetryableError(text) from err
            raise RejectedError("ses_" + _snake(code.removesuffix("Exception")), text) from err
        except (EndpointConnectionError, ConnectTimeoutError) as err:
            raise RetryableError(f"SES unreachable: {err}") from err
        except BotoCoreError as err:  # read timeouts and broken connections after the request went out
            raise RejectedError("delivery_unknown", f"SES {type(err).__name__}: {err}") from err


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"
