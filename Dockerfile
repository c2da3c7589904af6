# syntax=docker/dockerfile:1
# Two images from one file:
#   --target api      the server: ONNX Runtime + FastAPI + uvicorn, no torch, non-root (default)
#   --target trainer  torch (CPU) + the whole project: trains and exports the demo models
ARG BASE_IMAGE=python:3.11-slim

# The project's source, once for both images
FROM scratch AS source
COPY pyproject.toml README.md /src/
COPY src /src/src
COPY common /src/common
COPY formats /src/formats
COPY models /src/models
COPY training /src/training
COPY export /src/export
COPY service /src/service
COPY bench /src/bench
COPY reproduce /src/reproduce

FROM ${BASE_IMAGE} AS api-build
# The GPU variant (docker-compose.gpu.yml, with a CUDA base image) swaps in onnxruntime-gpu.
ARG ONNXRUNTIME=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
COPY --from=source /src /src
# The serving role only, as pyproject.toml declares it: skipfold[serve], no torch.
RUN /opt/venv/bin/pip install "/src[serve]" \
    && if [ -n "${ONNXRUNTIME}" ]; then \
        /opt/venv/bin/pip uninstall -y onnxruntime && /opt/venv/bin/pip install "${ONNXRUNTIME}"; \
    fi \
    && find /opt/venv -name "__pycache__" -prune -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/pip /opt/venv/lib/python3*/site-packages/setuptools

FROM ${BASE_IMAGE} AS trainer
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PATH=/opt/venv/bin:$PATH
# The CPU build: PyPI's Linux torch is the CUDA one (several GB); the +cpu wheel lives on
# PyTorch's own index (or in a local wheel directory that pip.conf's find-links names).
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install \
    --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"
COPY --from=source /src /src
# `skipfold demo`: training, export and serving; not OpenVINO (180 MB), which
# only `skipfold serve --engine openvino` and bench use.
RUN /opt/venv/bin/pip install "/src[serve,train,export]"
WORKDIR /data
ENTRYPOINT ["skipfold"]
CMD ["demo", "--workdir", "/data", "--no-serve"]

FROM ${BASE_IMAGE} AS api
COPY --from=api-build /opt/venv /opt/venv
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin skipfold
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    SKIPFOLD_REPOSITORY=/models \
    SKIPFOLD_HOST=0.0.0.0 \
    SKIPFOLD_PORT=8000 \
    SKIPFOLD_GRPC_PORT=8001
USER skipfold
EXPOSE 8000 8001
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-m", "skipfold.service.healthcheck"]
ENTRYPOINT ["skipfold", "serve"]
