"""As the team's identity: write, read and delete an object under a prefix (``own``), or be refused writing (``other``).

python3 storage_probe.py own <prefix> <token>      # must round-trip, then leave nothing behind
python3 storage_probe.py other <prefix> <token>    # must be refused by the store (not time out)
"""

import json
import sys

from mlkit_contract import PROFILE_MOUNT, TeamProfile
from workloads.common.storage import ObjectStore, join

DENIED = ("accessdenied", "access denied", "forbidden", "403", "permission", "authorization", "unauthorized")


def main(mode: str, prefix: str, token: str) -> int:
    with open(PROFILE_MOUNT) as f:
        profile = TeamProfile.model_validate_json(f.read())
    place = ObjectStore.from_profile(profile).at(join(prefix, "_mlkit-verify", f"{token}.txt"))
    if mode == "own":
        place.write_text(token)
        read = place.read_text()
        place.fs.delete_file(place.path)
        print(json.dumps({"ok": read == token and not place.exists(), "uri": place.uri, "read": read}))
        return 0
    try:
        place.write_text(token)
    except OSError as e:
        message = str(e)
        print(json.dumps({"ok": any(word in message.lower() for word in DENIED), "uri": place.uri, "error": message}))
        return 0
    place.fs.delete_file(place.path)
    print(json.dumps({"ok": False, "uri": place.uri, "error": "the write was accepted"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
