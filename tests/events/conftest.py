"""The events tests use the shared ``redis_server`` / ``redis_client``
fixtures of tests/conftest.py."""
