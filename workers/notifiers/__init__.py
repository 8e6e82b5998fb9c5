"""Stages of the 'notifiers' channel: one module per pattern, registered with @stage."""
