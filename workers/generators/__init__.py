"""Stages of the 'generators' channel: one module per pattern, registered with @stage."""
