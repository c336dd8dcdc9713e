# The suanli server image the Helm chart runs (never built in this project's CI: no Docker
# engine there). Ray's image, so the controller's Ray matches the RayCluster's.
FROM rayproject/ray:2.60.0-py311
WORKDIR /opt/suanli
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY schedulers ./schedulers
COPY kernels ./kernels
COPY cluster ./cluster
RUN pip install --no-cache-dir .
USER 1000
ENTRYPOINT []
CMD ["suanli", "server", "--host", "0.0.0.0", "--port", "8080"]
