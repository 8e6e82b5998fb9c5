"""Stages of the 'dispatchers' channel: one module per pattern, registered with @stage."""
