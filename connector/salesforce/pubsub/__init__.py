"""Salesforce's Pub/Sub API (gRPC): the messages and service stubs, compiled from pubsub_api.proto.

The proto is compiled when first asked for (grpcio-tools' protoc, in process, a few milliseconds),
so no generated code is kept in the repository and the stubs always match the installed protobuf.
Used by the Change Data Capture source (connector.sources.cdc) and the sandbox org's server.
"""
from __future__ import annotations

import functools
from typing import Any

#: the proto's path as protoc finds it from the package's root on sys.path
PROTO = "connector/salesforce/pubsub/pubsub_api.proto"


@functools.cache
def api() -> tuple[Any, Any]:
    """(messages, services): the modules protoc would generate (`pubsub_api_pb2`, `…_pb2_grpc`)."""
    import sys
    from pathlib import Path

    import grpc

    # protoc finds the proto on sys.path; an editable install (or running from another directory)
    # puts no entry there that holds ``connector/``, so the package's root goes on for the call.
    root = str(Path(__file__).resolve().parents[3])
    added = root not in sys.path
    if added:
        sys.path.append(root)
    try:
        return grpc.protos_and_services(PROTO)
    finally:
        if added:
            sys.path.remove(root)
