"""A plain Python grpcio echo server (the baseline a Python gRPC service would give), run as a
separate process by the benchmark. Prints its port on stdout, exits when stdin closes."""

from __future__ import annotations

import sys
from concurrent import futures

import grpc


def main() -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 512 << 20), ("grpc.max_send_message_length", 512 << 20)],
    )
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
