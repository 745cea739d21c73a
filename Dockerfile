# Builds the project and runs the test suite exactly as `make test` does on a fresh machine.
# `make system` installs the system packages the suite needs (PostgreSQL among them). The same
# image is the vault's code location in a deployment (deploy/README.md): with .venv on PATH it runs
# `dagster api grpc -m vault_pipeline.definitions`, the run workers and `vault serve` as they are.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /vault
COPY . .
RUN make setup system
ENV PATH="/vault/.venv/bin:${PATH}"
CMD ["make", "test"]
