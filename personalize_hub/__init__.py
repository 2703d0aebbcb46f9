"""The application layer: composes the engine (hub), the connectors and the workers into a running product."""
