"""The committed gRPC code is what the committed .proto compiles to (with the pinned
grpcio-tools): the two cannot drift apart."""

from skipfold.service.oip import generate


def test_committed_code_is_the_proto_s(tmp_path):
    for fresh in generate.generate(tmp_path):
        committed = generate.HERE / fresh.name
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"{committed} is stale: run python -m skipfold.service.oip.generate"
        )
