"""Integration tests: real Kafka, Redis, S3 emulator, SMTP and local_personalize over HTTP."""
