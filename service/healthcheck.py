"""`python -m skipfold.service.healthcheck`: exit 0 if the local server is ready, else 1.

The container HEALTHCHECK runs it: the standard library only, no HTTP client to install.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("SKIPFOLD_PORT", "8000")
    tls = bool(os.environ.get("SKIPFOLD_SSL_CERTFILE"))
    # the server's own certificate, on loopback: readiness is the question, not identity
    context = ssl._create_unverified_context() if tls else None
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return 0 if r.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
