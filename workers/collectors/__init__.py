"""Stages of the 'collectors' channel: one module per pattern, registered with @stage."""
