"""Test tooling: real servers (Redis, MariaDB, ...) started on free loopback ports."""
