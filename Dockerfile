# The one suanli image: the Helm chart runs it for the server and for every Ray pod (head and each
# worker group), so an attempt's actors import the same suanli, Ray, torch, xgboost, lightgbm and
# ONNX Runtime as the server that placed them. Ray's own image underneath, so the server's Ray is the
# RayCluster's (the chart's suanli.io/ray-version annotation names the same version).
# Never built in this project's CI (no Docker engine there): tests/helm/test_image.py checks its
# lines against the repository instead.
FROM rayproject/ray:2.60.0-py311

# Ray's image runs as `ray` (uid 1000, gid 100) with its Python in /home/ray/anaconda3.
# torch: the CPU build, pinned by .ci/constraints.txt; for CUDA nodes build with
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 (and push a second tag).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY --chown=1000:100 .ci/constraints.txt /home/ray/suanli/.ci/constraints.txt
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" -c /home/ray/suanli/.ci/constraints.txt torch

COPY --chown=1000:100 pyproject.toml README.md /home/ray/suanli/
COPY --chown=1000:100 runtime /home/ray/suanli/runtime
COPY --chown=1000:100 schedulers /home/ray/suanli/schedulers
COPY --chown=1000:100 kernels /home/ray/suanli/kernels
COPY --chown=1000:100 cluster /home/ray/suanli/cluster
# ray stays the image's own 2.60.0; the import check fails the build when a dependency is missing.
RUN pip install --no-cache-dir -c /home/ray/suanli/.ci/constraints.txt "ray==2.60.0" /home/ray/suanli \
 && python -c "import ray, runtime.backends.remote_entry, runtime.training.attempt, torch, xgboost, lightgbm, onnxruntime; assert ray.__version__ == '2.60.0', ray.__version__"

WORKDIR /home/ray
USER 1000
# KubeRay gives Ray pods their own command (ray start ...); the chart gives the server its own.
ENTRYPOINT []
CMD ["suanli", "server", "--host", "0.0.0.0", "--port", "8080"]
