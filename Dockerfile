# The processors' and the API's image for docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY producers producers
COPY processors processors
COPY api api
COPY snapshots snapshots
COPY stack stack
COPY boxoffice boxoffice
COPY web web
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["boxoffice", "api"]
