"""Start a moto S3 server on 127.0.0.1 for the integration tests.

Prints "ready PORT" once listening, then serves until its standard input closes, which happens
when the test process that started it exits, so no server outlives its tests.
"""
import os
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    port = int(sys.argv[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print(f"ready {port}", flush=True)
    sys.stdin.read()
    server.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
