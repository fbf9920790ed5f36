# The mash-broker service image: the package and its agreement, run as an unprivileged user.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY adapters ./adapters
COPY schemas ./schemas
COPY policy ./policy
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-cache-dir . && useradd --system --uid 10001 mash
USER mash
EXPOSE 8080
CMD ["mash-broker", "run"]
