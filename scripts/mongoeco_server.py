#!/usr/bin/env python3
"""Serve a MongoDB-compatible wire protocol endpoint with mongoeco until SIGTERM or SIGINT.

`cargo xtask services up` runs this (in a CPython >= 3.13 venv holding `mongoeco[wire]`) on
127.0.0.1:27017 when no Docker engine is available: Debian has no mongod package, and the npm/PyPI
helpers that provide one download it at run time. mongoeco is an emulator, so the MongoDB tests
should stay on the CRUD and TTL-index surface a session store needs.

mongoeco 4.11 and the Rust `mongodb` driver (3.x) disagree on three details of the wire protocol.
This launcher smooths them over before the server starts:

1. The driver sends `limit`, `skip`, `batchSize`, `maxTimeMS` and cursor ids as int64; mongoeco only
   accepts int32 there. These top-level command fields are converted to plain integers, and a
   negative `find` limit (single batch) is rewritten as a positive limit plus `singleBatch`.
2. Real servers always send cursor ids as int64 and the driver refuses anything else, so replies
   carry `cursor.id` as int64.
3. The driver cannot parse a command error without a numeric `code`; errors get code 8
   (UnknownError) when mongoeco gives none.
"""

import argparse
import asyncio
import signal

COMMAND_INTEGER_FIELDS = ("limit", "skip", "batchSize", "maxTimeMS", "getMore", "ntoreturn")


def install_rust_driver_fixes() -> None:
    from bson.int64 import Int64
    from mongoeco.core.bson_scalars import BsonInt64
    from mongoeco.wire import executor as wire_executor
    from mongoeco.wire import proxy as wire_proxy

    def plain_integer(value):
        return value.value if isinstance(value, BsonInt64) else value

    # 1. Only the top-level command document is touched, never user documents.
    build_request_context = wire_executor.WireCommandExecutor._build_request_context

    def build_request_context_with_int32_fields(self, body, **kwargs):
        if isinstance(body, dict):
            for field in COMMAND_INTEGER_FIELDS:
                if field in body:
                    body[field] = plain_integer(body[field])
            if isinstance(body.get("cursors"), list):
                body["cursors"] = [plain_integer(cursor) for cursor in body["cursors"]]
            limit = body.get("limit")
            if "find" in body and type(limit) is int and limit < 0:
                body["limit"] = -limit
                body["singleBatch"] = True
        return build_request_context(self, body, **kwargs)

    wire_executor.WireCommandExecutor._build_request_context = build_request_context_with_int32_fields

    # 2. Cursor ids leave as int64.
    encode_op_msg_response = wire_proxy.encode_op_msg_response

    def encode_op_msg_response_with_int64_cursor_id(document, **kwargs):
        cursor = document.get("cursor") if isinstance(document, dict) else None
        if isinstance(cursor, dict) and type(cursor.get("id")) is int:
            cursor["id"] = Int64(cursor["id"])
        return encode_op_msg_response(document, **kwargs)

    wire_proxy.encode_op_msg_response = encode_op_msg_response_with_int64_cursor_id

    # 3. Every command error carries a numeric code.
    build_error_document = wire_executor.build_error_document

    def build_error_document_with_code(exc):
        document = build_error_document(exc)
        document.setdefault("code", 8)
        document.setdefault("codeName", "UnknownError")
        return document

    wire_executor.build_error_document = build_error_document_with_code


async def serve(host: str, port: int, sqlite_path: str | None) -> None:
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    engine = None
    if sqlite_path:
        from mongoeco.engines import SQLiteEngine

        engine = SQLiteEngine(sqlite_path)
    server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)
    address = await server.start()
    print(f"mongoeco listening on {address.host}:{address.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, stop.set)
    await stop.wait()
    await server.close()
    print("mongoeco stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--sqlite", metavar="FILE", help="keep data in this SQLite file (default: in memory)")
    args = parser.parse_args()
    install_rust_driver_fixes()
    asyncio.run(serve(args.host, args.port, args.sqlite))


if __name__ == "__main__":
    main()
