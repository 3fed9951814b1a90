"""The domain layer: graph-type modules, generated models, the event
catalog and encrypted secrets (see docs/ARCHITECTURE.md)."""
