"""`python -m skipfold.service.healthcheck`: exit 0 if the local server is ready, else 1.

The container HEALTHCHECK runs it: the standard library only, no HTTP client to install.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("SKIPFOLD_PORT", "8000")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
            return 0 if r.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
