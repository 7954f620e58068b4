# One image for the head and the workers: Python, Ray (the version pyproject.toml pins) and
# gdsearch. No token or other secret is built in; docker-compose.yml passes it at run time.
FROM python:3.11-slim

WORKDIR /opt/gdsearch
COPY pyproject.toml README.md ./
COPY gdsearch ./gdsearch
COPY jobs ./jobs
COPY data ./data
RUN pip install --no-cache-dir . \
    && mkdir -p /results

ENV RAY_AUTH_MODE=token \
    GDSEARCH_RESULTS=/results
