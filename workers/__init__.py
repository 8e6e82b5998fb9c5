"""Workers: the runtime that consumes job streams, the stage registry, and one module per stage."""
