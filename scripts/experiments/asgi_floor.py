"""The floor of a Python HTTP path: a bare ASGI app under the same uvicorn that decodes the PNG
with Pillow, runs ONNX Runtime on the event loop and answers the top class, nothing else (no
routing, checks, metrics or request ids). Compare it with `skipfold serve` through
scripts/experiments/http_ab.py.

    python scripts/experiments/asgi_floor.py MODEL.onnx PORT
"""

import io
import json
import sys

import numpy as np
import uvicorn
from PIL import Image

from skipfold.service.runtime import create_session


def make_app(model_path: str):
    session = create_session(model_path, ["CPUExecutionProvider"], 2, "all", "cpu")

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        image = Image.open(io.BytesIO(body))
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)[None]
        probabilities = session.run(None, {"images": pixels})[1][0]
        top = int(np.argmax(probabilities))
        payload = json.dumps({"index": top, "probability": float(probabilities[top])}).encode()
        length = str(len(payload)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(sys.argv[1]), port=int(sys.argv[2]), log_level="warning", lifespan="off")
