"""Generated protobuf modules (committed on purpose; `scripts/gen_proto.py` regenerates them)."""
