# Builds the project and runs the test suite exactly as `make test` does on a fresh machine.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /vault
COPY . .
RUN make setup system
CMD ["make", "test"]
