# syntax=docker/dockerfile:1
# Two stages: `build` prepares the model with the `prepare` extra (torch CPU, transformers, optimum);
# `runtime` is slim Python with only the runtime + `serve` dependencies, the prepared folder, and a
# non-root user. Build:
#   docker build -t fastembed-adapter .                                                    # prepares $MODEL
#   docker build --build-arg MODEL=BAAI/bge-small-en-v1.5 -t fea-bge .
#   docker build --build-arg PREPARED=models/all-MiniLM-L6-v2 -t fea-minilm .              # ship a folder you prepared
# Run: docker run -p 8080:8080 -e FEA_API_KEY=secret fastembed-adapter
# The INT8 file is made for the CPU of the build machine (--target auto); build on the CPU family you
# deploy to, or pass PREPARE_ARGS="--target avx2" (runs well on any AVX2 x86-64).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG MODEL=sentence-transformers/all-mpnet-base-v2
ARG PREPARED=
ARG PREPARE_ARGS="--target auto --no-benchmark"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 HF_HOME=/tmp/hf
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY scripts ./scripts
# torch first and pinned to the CPU build: an unpinned torch pulls a multi-GB CUDA build.
RUN python -m venv /venv \
 && /venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
 && /venv/bin/pip install ".[prepare]" \
 && /venv/bin/pip wheel --no-deps -w /wheels .
# Either copy a folder prepared elsewhere (build context path in PREPARED) or run `prepare` here.
COPY ${PREPARED:-pyproject.toml} /prepared-input
RUN if [ -n "$PREPARED" ]; then \
      mkdir -p /model && cp -r /prepared-input/. /model/; \
    else \
      /venv/bin/prepare --model "$MODEL" --output /model $PREPARE_ARGS; \
    fi \
 && test -f /model/modules.json && ls /model/onnx

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/venv/bin:$PATH
COPY scripts/install-runtime.sh /tmp/install-runtime.sh
COPY --from=build /wheels /wheels
RUN python -m venv /venv \
 && bash /tmp/install-runtime.sh /venv/bin/python "$(ls /wheels/fastembed_adapter-*.whl)" \
 && rm -rf /wheels /tmp/install-runtime.sh \
 && useradd --system --uid 10001 --home-dir /app --create-home app
COPY --from=build --chown=app:app /model /app/model
USER app
WORKDIR /app
# The model path is fixed; everything else can be changed with FEA_* variables at run time.
# Railway (and most PaaS) set PORT; FEA_HOST=0.0.0.0 listens on all interfaces inside the container.
ENV FEA_MODEL=/app/model FEA_HOST=0.0.0.0 PORT=8080 HF_HUB_OFFLINE=1
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('FEA_PORT') or os.environ['PORT']}/health\", timeout=4)"
# exec form: the server is PID 1 and gets SIGTERM directly (graceful drain, exit 0).
CMD ["fastembed-adapter", "serve"]
