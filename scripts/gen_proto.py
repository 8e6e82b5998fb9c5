"""Regenerate the committed protobuf modules in proto/ (and into another folder for the stale test).

The .proto files import each other as `goreports/proto/x.proto`, so the generated code imports
`goreports.proto.x_pb2`: protoc is given a virtual path that maps that prefix onto proto/.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"


def generate(out_dir: Path) -> list[Path]:
    """Write *_pb2.py and *_pb2.pyi for every .proto (and *_pb2_grpc.py for those defining a
    service) into out_dir; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(PROTO_DIR.glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{include}",
            f"-Igoreports/proto={PROTO_DIR}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
        ]
        # gRPC stubs only for the files that define a service: the plugin would otherwise
        # write an empty *_pb2_grpc.py beside every message-only module.
        with_service = {p.stem for p in protos if re.search(r"^service\s", p.read_text(), re.M)}
        if with_service:
            args.append(f"--grpc_python_out={tmp}")
        args += [f"goreports/proto/{p.name}" for p in protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed: " + " ".join(args))
        written = []
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in sorted((Path(tmp) / "goreports" / "proto").iterdir()):
            if f.name.endswith("_pb2_grpc.py") and f.name[: -len("_pb2_grpc.py")] not in with_service:
                continue
            shutil.copy(f, out_dir / f.name)
            written.append(out_dir / f.name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_DIR)
    args = parser.parse_args()
    for path in generate(args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    sys.exit(main())
