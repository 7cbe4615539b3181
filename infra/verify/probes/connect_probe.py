"""Whether this pod reaches a URL (an HTTP answer) or a TCP port (a connection), within a timeout.

python3 connect_probe.py http <url>
python3 connect_probe.py tcp <host> <port>
"""

import json
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT = 5


def main(kind: str, *target: str) -> int:
    try:
        if kind == "http":
            try:
                with urllib.request.urlopen(target[0], timeout=TIMEOUT) as response:
                    status = response.status
            except urllib.error.HTTPError as e:  # an answer all the same
                status = e.code
            print(json.dumps({"reached": True, "status": status}))
        else:
            with socket.create_connection((target[0], int(target[1])), timeout=TIMEOUT):
                print(json.dumps({"reached": True}))
    except OSError as e:
        print(json.dumps({"reached": False, "error": f"{type(e).__name__}: {e}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
