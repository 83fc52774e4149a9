"""A storm trigger command for the tests: "restarts the game server" of the reference backend at
``$LOADTEST_TARGET`` the way a pod restart looks to its players (every session closed with 1012,
service restart), through its chaos API with the admin token from ``$STORM_AUTH``. Exit 0 when it
dropped someone, 4 when the backend refused, 5 when it dropped no one."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    request = urllib.request.Request(
        os.environ["LOADTEST_TARGET"].rstrip("/") + "/admin/api/chaos",
        data=json.dumps({"action": "disconnect", "fraction": 1.0, "close_code": 1012}).encode(),
        headers={"Authorization": f"Bearer {os.environ['STORM_AUTH']}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            dropped = json.load(reply).get("dropped", 0)
    except urllib.error.HTTPError as exc:
        print(f"refused: {exc.code}", file=sys.stderr)
        return 4
    print(f"dropped {dropped}")
    return 0 if dropped else 5


if __name__ == "__main__":
    sys.exit(main())
