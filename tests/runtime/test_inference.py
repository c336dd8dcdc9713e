"""Serving on the emulated demo cluster: realtime replicas at the edge node of their site,
verified before load, with payment decisions."""

import numpy as np
import pytest

import cluster
from runtime.artifacts.artifact import load_artifact
from runtime.artifacts.signing import SignatureError
from runtime.inference.endpoint import check_thresholds, deploy
from tests.runtime.test_artifacts import keys, make_artifact, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.ray


def test_realtime_replicas_start_at_the_edge_of_their_site(demo_cluster, tmp_path, trained, keys):  # noqa: F811
    _, test, _ = trained
    directory = make_artifact(tmp_path, trained, keys)
    endpoint = deploy(directory, replicas=2, latency="realtime", site="branch-sh", public_key=str(keys[1]),
                      thresholds={"block": 0.9, "hold": 0.7, "warn": 0.5})
    try:
        nodes = {n.id: n for n in cluster.snapshot().nodes}
        where = [nodes[i["node_id"]] for i in endpoint.info()]
        assert where[0].tier == "edge" and where[0].site == "branch-sh"  # the edge node has one core: one replica
        assert where[1].tier == "center"  # the second goes to the centre
        rows = test.drop(columns=["class"]).head(20).to_dict("records")  # raw rows, as a caller sends them
        expected = load_artifact(directory, keys[1]).predict(rows)
        np.testing.assert_allclose(endpoint.predict(rows), expected, atol=1e-6)
        np.testing.assert_allclose(endpoint.predict(rows), expected, atol=1e-6)  # the other replica agrees
        decisions = endpoint.decide(rows)
        assert set(decisions) <= {"block", "hold", "warn", "pass"} and len(decisions) == 20
        assert all((d == "block") == (p >= 0.9) for d, p in zip(decisions, expected, strict=True))
    finally:
        endpoint.shutdown()


def test_tampered_artifact_is_refused_before_any_replica_starts(demo_cluster, tmp_path, trained, keys):  # noqa: F811
    directory = make_artifact(tmp_path, trained, keys)
    (directory / "preprocessing.json").write_text('{"features": [], "mean": [], "scale": []}')
    with pytest.raises(SignatureError, match="changed: preprocessing.json"):
        deploy(directory, replicas=1, public_key=str(keys[1]))


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="thresholds: need 1 >= block >= hold >= warn"):
        check_thresholds({"block": 0.5, "hold": 0.7, "warn": 0.1})
    with pytest.raises(ValueError, match="exactly block, hold and warn"):
        check_thresholds({"block": 0.9})
