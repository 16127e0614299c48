# fhirmwl container image: slim, non-root, with a health check.
#   podman build -t fhirmwl .      (or docker build)
# The base image is a build argument so a site can use its own mirrored Python image.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/fhirmwl && /opt/fhirmwl/bin/pip install --no-cache-dir .

FROM ${BASE_IMAGE}
RUN useradd --system --uid 10001 --home-dir /var/lib/fhirmwl --create-home fhirmwl
COPY --from=build /opt/fhirmwl /opt/fhirmwl
ENV PATH=/opt/fhirmwl/bin:$PATH \
    FHIRMWL_HOST=0.0.0.0 \
    FHIRMWL_DB=sqlite:////var/lib/fhirmwl/fhirmwl.db \
    FHIRMWL_LOG_FORMAT=json
USER fhirmwl
WORKDIR /var/lib/fhirmwl
VOLUME /var/lib/fhirmwl
EXPOSE 8080 2575 11112
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status == 200 else 1)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["fhirmwl"]
CMD ["serve"]
