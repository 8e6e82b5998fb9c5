"""Stages of the 'aggregators' channel: one module per pattern, registered with @stage."""
