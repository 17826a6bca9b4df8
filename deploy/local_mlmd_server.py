"""ML Metadata over gRPC, as a Kubeflow Pipelines cluster serves it, from the ml-metadata wheel.

The wheel ships no `metadata_store_server` binary, but its Python store calls the same C++
`MetadataStore` methods the server exposes. `serve(sqlite_path)` answers every method of
`ml_metadata.MetadataStoreService` by calling that store method on a SQLite database, one
request at a time; errors keep their status codes. Steps reach it as on a cluster, through
`METADATA_GRPC_SERVICE_HOST` and `METADATA_GRPC_SERVICE_PORT`.

    python -m deploy.local_mlmd_server --sqlite metadata.sqlite --port 8080
"""

from __future__ import annotations

import argparse
import os
import threading
from concurrent import futures

import grpc
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

SERVICE = "ml_metadata.MetadataStoreService"


def _handlers(store: metadata_store.MetadataStore) -> grpc.GenericRpcHandler:
    lock = threading.Lock()
    service = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]
    codes = {code.value[0]: code for code in grpc.StatusCode}

    def handler(method: str, response_class):
        def call(request, context):
            response = response_class()
            try:
                with lock:
                    store._call_method(method, request, response)  # noqa: SLF001 (the C++ call)
            except errors.StatusError as error:
                context.abort(codes.get(error.error_code, grpc.StatusCode.UNKNOWN), str(error))
            return response
        return call

    methods = {}
    for method in service.methods:
        request_class = getattr(metadata_store_service_pb2, method.input_type.name)
        response_class = getattr(metadata_store_service_pb2, method.output_type.name)
        methods[method.name] = grpc.unary_unary_rpc_method_handler(
            handler(method.name, response_class),
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def serve(sqlite_path: str, port: int = 0) -> tuple[grpc.Server, int]:
    """Starts the service on localhost (`port` 0: a free one); returns it and its port."""
    os.makedirs(os.path.dirname(os.path.abspath(sqlite_path)), exist_ok=True)
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = sqlite_path
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_handlers(metadata_store.MetadataStore(config)),))
    port = server.add_insecure_port(f"localhost:{port}")
    server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", required=True, help="the SQLite file of the store")
    parser.add_argument("--port", type=int, default=8080, help="port on localhost")
    args = parser.parse_args()
    server, port = serve(args.sqlite, args.port)
    print(f"ML Metadata gRPC service on localhost:{port} ({args.sqlite})", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
