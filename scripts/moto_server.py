"""moto's DynamoDB server with one request at a time.

`moto_server` handles requests on concurrent threads, and moto evaluates a condition
expression and applies the write in separate steps without a lock, so two concurrent
conditional writes to one item can both succeed (DynamoDB makes each conditional write
atomic). The store's compare-and-set tests would then see lost updates that DynamoDB never
produces. This launcher serves moto's application behind one lock.

moto keeps everything in memory. With `--state FILE` the DynamoDB tables and items are
written to FILE (a pickle, replaced atomically) after every request and before its answer
leaves, and read back at start-up: what was acknowledged survives a `kill -9`, as DynamoDB's
tables survive an outage of its endpoint (`cargo xtask faults` relies on this).

Usage (with the venv that has `moto[dynamodb]` installed):
    python moto_server.py [-H 127.0.0.1] [-p 8000] [--state FILE]
"""

import argparse
import os
import pickle
import signal
import sys
import threading

from moto.dynamodb.models import dynamodb_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000)
    parser.add_argument("--state", metavar="FILE", help="keep the tables in this file (default: in memory)")
    args = parser.parse_args()

    moto_app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()
    if args.state and os.path.exists(args.state):
        with open(args.state, "rb") as state:
            dynamodb_backends.update(pickle.load(state))

    def save_state():
        # A kill -9 between the two steps leaves the previous state whole.
        partial = args.state + ".partial"
        with open(partial, "wb") as state:
            pickle.dump(dict(dynamodb_backends), state)
        os.replace(partial, args.state)

    def serialized(environ, start_response):
        # The whole response is produced under the lock, so each request sees and leaves
        # a consistent table.
        with lock:
            body = list(moto_app(environ, start_response))
            if args.state:
                save_state()
            return body

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(
        args.host,
        args.port,
        serialized,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
