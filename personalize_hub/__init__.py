"""The application: composes the engine (hub), the connectors and the workers into what users run."""
