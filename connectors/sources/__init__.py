"""Where events come from: webhooks and Kafka."""
