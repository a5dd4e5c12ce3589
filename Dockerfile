# The citytel application image: one image for collect, api, db migrate, simulate.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 citytel \
    && useradd --system --uid 10001 --gid citytel --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin citytel

COPY . /tmp/citytel-src
RUN pip install /tmp/citytel-src && rm -rf /tmp/citytel-src

WORKDIR /tmp
USER citytel:citytel
ENTRYPOINT ["citytel"]
CMD ["--help"]
