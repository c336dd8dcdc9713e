from schedulers.types import ClusterState, Device, JobRequest, Node


def node(node_id, *devices, tier="center", site="dc1", cluster="c1"):
    return Node(id=node_id, cluster=cluster, tier=tier, site=site, devices=tuple(devices))


def gpu(model="A100", count=4, in_use=0):
    return Device("gpu", model, count, memory_bytes=80 * 2**30, in_use=in_use)


def cpu(count=8, in_use=0):
    return Device("cpu", "Xeon-8380", count, in_use=in_use)


def state(*nodes, **kw):
    return ClusterState(nodes=tuple(nodes), **kw)


def job(job_id, **kw):
    defaults = dict(allowed_kinds=("gpu",), algorithm="mlp", work=1e8)
    defaults.update(kw)
    return JobRequest(id=job_id, **defaults)
