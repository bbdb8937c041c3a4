#!/usr/bin/env python3
"""f2-healthcheck [PORT | URL]: exit 0 when a daemon's /healthz answers 200, 1 otherwise.

For Compose health checks (the images carry neither curl nor wget). A bare port means
http://127.0.0.1:PORT/healthz; without an argument the port comes from F2_HEALTH_PORT.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else os.environ.get("F2_HEALTH_PORT", "")
    if not target:
        print("usage: f2-healthcheck PORT|URL (or set F2_HEALTH_PORT)", file=sys.stderr)
        return 2
    url = target if "://" in target else f"http://127.0.0.1:{int(target)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = response.read(2048).decode(errors="replace")
            print(body)
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read(2048).decode(errors='replace')}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
