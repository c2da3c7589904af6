"""Regenerate the committed gRPC code: `python -m skipfold.service.oip.generate`.

Needs grpcio-tools (the test extra pins the version the committed files were made with). The
proto is compiled as skipfold/service/oip/grpc_service.proto, so that the generated modules
import each other as skipfold.service.oip.*, wherever skipfold is installed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "grpc_service.proto"
GENERATED = ("grpc_service_pb2.py", "grpc_service_pb2.pyi", "grpc_service_pb2_grpc.py")
PACKAGE = Path("skipfold", "service", "oip")


def generate(out: Path) -> list[Path]:
    """Compile the proto into `out` (a folder); return the generated files' paths."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / PACKAGE
        source.mkdir(parents=True)
        shutil.copy(HERE / PROTO, source / PROTO)
        arguments = [
            "grpc_tools.protoc",
            f"--proto_path={tmp}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(PACKAGE / PROTO),
        ]
        if protoc.main(arguments) != 0:
            raise RuntimeError(f"protoc failed on {HERE / PROTO}")
        out.mkdir(parents=True, exist_ok=True)
        for name in GENERATED:
            shutil.copy(source / name, out / name)
    return [out / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
