"""`suanli demo`: bring up the embedded default, show what suanli sees, train the fraud model with
2 workers on it (a real dataset from ../shared/data/credit when present, else generated payment
transactions), then export, sign, compress, verify, deploy and predict."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.table import Table

from runtime.cli.capacity import capacity_table
from runtime.cli.common import console

SHARED_FRAUD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "credit" / "ulb_creditcard_fraud_sample.csv"


def inventory_table(found) -> Table:
    """This machine's discovered devices as a rich table."""
    table = Table(title="Devices on this machine")
    for col in ("kind", "model", "index", "count", "memory", "utilisation", "temperature", "healthy"):
        table.add_column(col)
    for d in found:
        table.add_row(
            d.kind, d.model, str(d.index), str(d.count), f"{d.memory_total_bytes / 2**30:.1f} GiB",
            "-" if d.utilisation is None else f"{100 * d.utilisation:.0f}%",
            "-" if d.temperature_c is None else f"{d.temperature_c:.0f} C",
            "yes" if d.healthy else "NO",
        )
    return table


def metrics_table(name: str, metrics: dict) -> Table:
    table = Table(title=f"{name}: test-split metrics (REQUIREMENTS 8.3, JR/T 0221 bar)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("auc", "ks", "precision", "recall", "f1", "log_loss", "positive_rate", "rows"):
        table.add_row(key, f"{metrics[key]:.4f}" if isinstance(metrics[key], float) else str(metrics[key]))
    cm = metrics["confusion_matrix"]
    table.add_row("confusion (tn fp fn tp)", f"{cm['tn']} {cm['fp']} {cm['fn']} {cm['tp']}")
    verdict = "PASS" if metrics["jrt0221_auc_pass"] else "FAIL"
    table.add_row(f"AUC >= {metrics['jrt0221_auc_bar']} (funds-related)", verdict)
    return table


def demo() -> None:
    """Start a local suanli server (it starts the embedded Ray head on loopback), print inventory and
    capacity, train the fraud MLP with 2 workers through it, print its metrics and its events,
    export, sign, compress, verify, deploy and predict; then stop the server and its Ray."""
    import ray

    from cluster.devices import discover_local
    from runtime.client import Client
    from runtime.datagen import write_transactions
    from runtime.server.local import stop_local_server
    from runtime.specs import TrainingJob

    found = discover_local()
    console.print(inventory_table(found))
    if not any(d.kind == "gpu" for d in found):
        console.print("No NVIDIA GPU found (NVML unavailable): running on the CPU only.")
    state_dir = Path(tempfile.mkdtemp(prefix="suanli-demo-"))
    try:
        with console.status("starting a local suanli server (and its Ray head on 127.0.0.1)..."):
            client = Client(state_dir=state_dir)
        console.print(f"suanli server at {client.url} ({client.server_info['role']}), Ray at "
                      f"{client.server_info['ray_address']}, store {client.server_info['store']}")
        console.print(capacity_table(client.capacity()))
        if SHARED_FRAUD.exists():
            dataset, label, source = SHARED_FRAUD, "Class", f"real data: {SHARED_FRAUD.name} (ULB credit-card fraud sample)"
        else:
            dataset = write_transactions(state_dir / "transactions.csv")
            label, source = "is_fraud", "generated payment transactions (../shared/data/credit not found)"
        console.print(f"Training the fraud MLP with 2 workers on {source}")
        categorical = ["channel", "device"] if label == "is_fraud" else []
        job = client.submit(TrainingJob(name="fraud-mlp", tenant="risk-team", user="demo", dataset=str(dataset),
                                        label=label, categorical=categorical, workers=2, device="cpu", epochs=5))
        with console.status(f"{job.id}: training on Ray Train (2 workers)..."):
            state = job.wait(timeout=900)
        console.print(job.logs())
        if state.value != "SUCCEEDED":
            raise SystemExit(f"demo: training {state.value}: {job.info()['error']}")
        result = job.result()
        console.print(metrics_table(job.id, result.metrics))
        console.print(f"provenance: {result.provenance_path} (workers on their placed nodes: "
                      f"{result.provenance['modelling']['environment']['workers_on_placed_nodes']})")
        serve(client, job, state_dir, dataset, label)
        client.close()
    finally:
        ray.shutdown()
        stop_local_server(state_dir, stop_ray=True)


def serve(client, job, state_dir: Path, dataset: Path, label: str) -> None:
    """Export, sign, compress, verify, register, deploy on Ray Serve and score raw rows over HTTP."""
    from runtime.artifacts.registry import TRUSTED_KEY_FILE
    from runtime.artifacts.signing import generate_keypair, verify_directory

    private, public = generate_keypair(state_dir / "keys")
    pinned = state_dir / TRUSTED_KEY_FILE  # the operator's step: the server trusts models signed by this key
    pinned.parent.mkdir(exist_ok=True)
    pinned.write_bytes(public.read_bytes())
    artifact = client.export(job, state_dir / "artifacts" / "teacher", private)
    console.print(f"signed artifact: {artifact} (model.sig, OpenSSF model-signing, ECDSA P-256)")
    with console.status("compressing: distillation, int8 quantization (dynamic and static QDQ)..."):
        report = client.compress(artifact, state_dir / "artifacts" / "compressed",
                                 methods=["distillation", "quantize_dynamic", "quantize_static"],
                                 private_key=private, public_key=public)
    table = Table(title=f"compression (chosen: {report['chosen']}; AUC within 0.005 of the source)")
    for col in ("artifact", "AUC", "size KiB", "p50 ms (1 row)", "rows/s (1 row)", "rows/s (256)"):
        table.add_column(col, justify="left" if col == "artifact" else "right")
    for name, m in [("teacher (ONNX fp32)", report["before"])] + [(n, r["after"]) for n, r in report["candidates"].items()]:
        table.add_row(name, f"{m['auc']:.4f}", f"{m['size_bytes'] / 1024:.1f}", f"{m['batch1_p50_ms']:.3f}",
                      f"{m['batch1_rows_per_s']:,.0f}", f"{m['batch256_rows_per_s']:,.0f}")
    console.print(table)
    verify_directory(report["chosen_path"], public)
    console.print(f"verified {report['chosen_path']}")
    registry = client.registry(state_dir / "registry", public_key=public)
    version = registry.register(report["chosen_path"], "fraud", actor="demo")
    registry.promote("fraud", version.version)  # by the server, as this client's user
    with console.status("deploying fraud:v1 on Ray Serve (centre replica, edge-first router)..."):
        endpoint = client.deploy(registry.root, "fraud", thresholds={"block": 0.9, "hold": 0.7, "warn": 0.5})
    console.print(f"serving {endpoint.model} at {endpoint.centre_url}")
    from runtime.data import read_frame

    frame = read_frame(dataset)
    picked = [frame[frame[label] == 1].iloc[0], frame[frame[label] == 0].iloc[0], frame[frame[label] == 0].iloc[1]]
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.drop(labels=[label]).items()} for r in picked]
    with endpoint.client() as scoring:
        for i, row in enumerate(rows):
            answer = scoring.score(row, request_id=f"demo-{i}")
            console.print(f"transaction {answer.request_id} (label {int(picked[i][label])}): fraud probability "
                          f"{answer.scores[0]:.4f} -> {answer.decisions[0]} ({answer.model}, {answer.served_by['tier']} "
                          f"replica, {answer.served_by['provider']})")
