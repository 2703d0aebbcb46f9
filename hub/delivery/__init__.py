"""Getting events out: partitioned batching, retries, adaptive rate limiting and the dead letter."""
