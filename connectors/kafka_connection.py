"""How the kafka source and the kafka_topic destination reach the brokers: addresses, TLS and SASL."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import BaseModel, Field, model_validator

from hub.secret import Secret


class KafkaConnection(BaseModel):
    """Broker addresses and security, mixed into both Kafka connector configs."""

    bootstrap_servers: str = Field(..., description="Brokers as host:port[,host:port], e.g. ${KAFKA_BOOTSTRAP}.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (managed Kafka: usually SASL_SSL)."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism, with the SASL_* protocols."
    )
    sasl_username: str | None = Field(None, description="SASL user name, e.g. ${KAFKA_USERNAME}.")
    sasl_password: Secret | None = Field(None, description="SASL password, from the environment; never logged.")
    ssl_ca_file: Path | None = Field(None, description="CA bundle for TLS; default: the system's trust store.")

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaConnection:
        if self.security_protocol.startswith("SASL") and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username and sasl_password")
        return self

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's consumer and producer."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                   "security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = create_ssl_context(cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None)
        if self.security_protocol.startswith("SASL"):
            assert self.sasl_password is not None
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password.get_secret_value())
        return options
