"""Loading a model: verify an artifact's signature, then open its `model.onnx` in ONNX Runtime.
There is no switch to skip the verification. `ort_session` is the one place an ONNX Runtime
session is built (artifacts, the serving replicas, the preprocessing graph, compression's
measurements), with the execution providers of the placement's device kind."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.artifacts.inputs import input_feeds
from runtime.artifacts.signing import SIGNATURE_FILE, verify_directory


def ort_session(model: str | Path | bytes, kind: str = "cpu", threads: int | None = 1):
    """An ONNX Runtime InferenceSession of `model` (a path, or the serialized model's bytes) on
    the providers of device kind `kind` (see `execution_providers`), with `threads` intra-op
    threads and one inter-op thread (`threads=None`: ONNX Runtime's own defaults). ONNX Runtime's
    exception when it cannot load the model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    payload = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(payload, options, providers=execution_providers(kind))


def read_verified(directory: str | Path, public_key: str | None) -> dict[str, bytes]:
    """Every file of the artifact as bytes, read once, after verifying the signature over those
    bytes (written to a private directory and verified there). SignatureError otherwise."""
    source = Path(directory)
    files = {p.relative_to(source).as_posix(): p.read_bytes() for p in sorted(source.rglob("*")) if p.is_file()}
    if SIGNATURE_FILE not in files:
        raise ValueError(f"artifact: {source} has no {SIGNATURE_FILE}; only signed artifacts are served")
    private = Path(tempfile.mkdtemp(prefix="suanli-verify-"))
    try:
        for name, payload in files.items():
            target = private / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
        verify_directory(private, public_key)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return files


@dataclass
class LoadedModel:
    """A verified artifact with an ONNX Runtime session; `predict` takes raw rows."""

    directory: Path
    session: object
    numeric: list[str]
    categorical: list[str]
    provider: str

    @property
    def features(self) -> list[str]:
        """The raw input columns, in order."""
        return self.numeric + self.categorical

    def predict(self, rows) -> np.ndarray:
        """Probabilities for raw rows (see `to_frame` for the forms accepted and the checks)."""
        return self.session.run(["probability"], input_feeds(rows, self.numeric, self.categorical))[0]


def execution_providers(kind: str) -> list[str]:
    """ONNX Runtime providers for a placement's device kind, best first, among those installed:
    CUDA on GPU nodes (onnxruntime-gpu), CANN on Ascend nodes, the CPU always last."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = {"gpu": ["CUDAExecutionProvider"], "npu": ["CANNExecutionProvider"]}.get(kind, [])
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


def load_artifact(directory: str | Path, public_key: str | Path | None = None, kind: str = "cpu",
                  threads: int = 1) -> LoadedModel:
    """Verify the artifact's signature, then open it in ONNX Runtime. SignatureError (naming the
    file) when anything was changed; nothing is loaded in that case."""
    target = Path(directory)
    verify_directory(target, public_key)
    try:
        session = ort_session(target / "model.onnx", kind, threads)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for corrupt models
        raise ValueError(f"model.onnx: ONNX Runtime cannot load it ({type(exc).__name__}: {str(exc)[:200]})") from None
    pre = json.loads((target / "preprocessing.json").read_text())
    return LoadedModel(target, session, pre["numeric"], pre["categorical"], session.get_providers()[0])
