# The project's Airflow image: the official Apache Airflow image, a Java runtime for
# spark-submit, the locked Python dependencies (requirements.txt), the project's ClickHouse
# provider (providers/clickhouse) and the project's code.
#
#   docker build -t nse-airflow:3.3.2 .
#
# The base tag must match apache-airflow in requirements.txt and the Python the lock is
# resolved for (`make lock` resolves for 3.11); tests/test_deploy.py checks both.
FROM apache/airflow:3.3.2-python3.11

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="nse-airflow" \
      org.opencontainers.image.description="Apache Airflow 3 with the NSE market-data pipelines: DAGs, plugins and the include.nse library" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/apache/airflow:3.3.2-python3.11"

# Java for spark-submit (Spark 4 needs 17 or later). Debian's security updates replace package
# versions, so the package is not pinned; the base image pins the Debian release.
# The symlink gives JAVA_HOME one path on amd64 and arm64. Users are numeric (0 is root, 50000
# the base image's `airflow` user) so that runtimes can check that the image runs as non-root.
USER 0
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" /usr/lib/jvm/java-17 \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17
USER 50000

# Dependencies before code, so that a code change reuses this (large) layer. The lock pins
# every package, apache-airflow included, so this cannot move Airflow off the base image's
# version; pyspark and pyspark-client share files and are pinned to the same release.
COPY --chown=50000:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

# The ClickHouse provider (connection type and hook), built from its source. --no-deps: its
# dependencies are in the lock above, so this adds the provider and changes nothing else.
COPY --chown=50000:0 providers/clickhouse/ /opt/airflow/providers/clickhouse/
RUN pip install --no-cache-dir --no-deps /opt/airflow/providers/clickhouse

# `include.nse` is imported from /opt/airflow; the lake is a volume in docker-compose.yaml.
ENV PYTHONPATH=/opt/airflow \
    NSE_LAKE_ROOT=/opt/airflow/lake

COPY --chown=50000:0 airflow_settings.yaml /opt/airflow/airflow_settings.yaml
COPY --chown=50000:0 scripts/apply_airflow_settings.py /opt/airflow/scripts/apply_airflow_settings.py
COPY --chown=50000:0 scripts/check_secrets.py /opt/airflow/scripts/check_secrets.py
COPY --chown=50000:0 include/ /opt/airflow/include/
COPY --chown=50000:0 plugins/ /opt/airflow/plugins/
COPY --chown=50000:0 dags/ /opt/airflow/dags/
