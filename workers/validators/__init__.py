"""Stages of the 'validators' channel: one module per pattern, registered with @stage."""
