"""moto's DynamoDB server with one request at a time.

`moto_server` handles requests on concurrent threads, and moto evaluates a condition
expression and applies the write in separate steps without a lock, so two concurrent
conditional writes to one item can both succeed (DynamoDB makes each conditional write
atomic). The store's compare-and-set tests would then see lost updates that DynamoDB never
produces. This launcher serves moto's application behind one lock.

Usage (with the venv that has `moto[dynamodb]` installed):
    python moto_server.py [-H 127.0.0.1] [-p 8000]
"""

import argparse
import signal
import sys
import threading

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
    args = parser.parse_args()

    moto_app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        # The whole response is produced under the lock, so each request sees and leaves
        # a consistent table.
        with lock:
            return list(moto_app(environ, start_response))

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
