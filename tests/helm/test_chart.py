"""The Helm chart rendered by a real helm, every object validated against the Kubernetes
schemas (kubernetes-validate) and the RayCluster against KubeRay's CRD fields, then checked for
what a platform engineer expects."""

import json
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cluster import labels as suanli_labels

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "suanli"
HELM = REPO / ".tools" / "bin" / "helm"
K8S_VERSION = "1.30.0"
VALUE_FILES = {"default": None, "gpu": "ci/values-gpu.yaml", "npu": "ci/values-npu.yaml", "edge": "ci/values-edge.yaml",
               "hardened": "ci/values-hardened.yaml"}
RAYCLUSTER_SCHEMA = json.loads((Path(__file__).parent / "raycluster-v1-subset.schema.json").read_text())
CRD_KINDS = {"RayCluster", "ServiceMonitor"}


@pytest.fixture(scope="module")
def helm():
    if not HELM.exists():
        subprocess.run(["bash", str(REPO / "scripts" / "install-helm.sh")], check=True, timeout=300)
    return str(HELM)


def render(helm, values_file=None, extra=()):
    cmd = [helm, "template", "risk", str(CHART), "--namespace", "suanli"]
    if values_file:
        cmd += ["-f", str(CHART / values_file)]
    out = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=60)
    return out


def objects(helm, name):
    out = render(helm, VALUE_FILES[name])
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def of_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


@pytest.mark.parametrize("name", sorted(VALUE_FILES))
def test_helm_lint(helm, name):
    cmd = [helm, "lint", str(CHART), "--strict"]
    if VALUE_FILES[name]:
        cmd += ["-f", str(CHART / VALUE_FILES[name])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", sorted(VALUE_FILES))
def test_every_object_validates(helm, name):
    docs = objects(helm, name)
    assert {"RayCluster", "Deployment", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy"} <= {
        d["kind"] for d in docs}
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    [ray] = of_kind(docs, "RayCluster")
    jsonschema.validate(ray, RAYCLUSTER_SCHEMA)
    groups = [("head", ray["spec"]["headGroupSpec"])] + [(g["groupName"], g) for g in ray["spec"]["workerGroupSpecs"]]
    for group_name, group in groups:
        template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": group_name},
                    "template": group["template"]}
        kubernetes_validate.validate(template, K8S_VERSION, strict=True)


def test_kubernetes_validation_catches_a_broken_object():
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def worker(docs, group_name):
    [ray] = of_kind(docs, "RayCluster")
    [group] = [g for g in ray["spec"]["workerGroupSpecs"] if g["groupName"] == group_name]
    return group


def ray_labels(group):
    return dict(pair.split("=", 1) for pair in group["rayStartParams"]["labels"].split(","))


def test_gpu_group_asks_for_gpus_tolerates_their_taint_and_selects_the_product(helm):
    group = worker(objects(helm, "gpu"), "a100")
    pod = group["template"]["spec"]
    [container] = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    labels = ray_labels(group)
    assert labels[suanli_labels.LABEL_ACCELERATOR] == "gpu" and labels[suanli_labels.LABEL_ACCELERATOR_MODEL] == "A100"
    assert json.loads(group["rayStartParams"]["resources"])["accelerator_type:A100"] == 1


def test_npu_group_asks_for_ascend_devices(helm):
    group = worker(objects(helm, "npu"), "ascend")
    pod = group["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["huawei.com/Ascend910"] == 8
    assert any(t["key"] == "huawei.com/Ascend910" for t in pod["tolerations"])
    assert json.loads(group["rayStartParams"]["resources"])["NPU"] == 8
    assert ray_labels(group)[suanli_labels.LABEL_ACCELERATOR_MODEL] == "Ascend910B"


def test_edge_group_selects_edge_nodes_and_carries_tier_and_site(helm):
    group = worker(objects(helm, "edge"), "branch-sh")
    pod = group["template"]["spec"]
    assert pod["nodeSelector"] == {"apps.openyurt.io/nodepool": "branch-sh"}
    assert any(t["key"] == "node-role.kubernetes.io/edge" for t in pod["tolerations"])
    labels = ray_labels(group)
    assert labels[suanli_labels.LABEL_TIER] == "edge" and labels[suanli_labels.LABEL_SITE] == "branch-sh"
    assert set(labels) <= {suanli_labels.LABEL_CLUSTER, suanli_labels.LABEL_TIER, suanli_labels.LABEL_SITE,
                           suanli_labels.LABEL_ACCELERATOR, suanli_labels.LABEL_ACCELERATOR_MODEL,
                           suanli_labels.LABEL_ACCELERATOR_MEMORY_GB, suanli_labels.LABEL_EMULATED,
                           suanli_labels.LABEL_NODE_NAME}


def ray_pod_environments(docs) -> dict[str, dict]:
    """Each Ray pod template's container environment (name -> value), by head or worker group."""
    [ray] = of_kind(docs, "RayCluster")
    groups = {"head": ray["spec"]["headGroupSpec"]} | {g["groupName"]: g for g in ray["spec"]["workerGroupSpecs"]}
    return {name: {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
            for name, group in groups.items()}


def test_every_ray_pod_starts_serve_with_haproxy_ingress_unless_turned_off(helm):
    environments = ray_pod_environments(objects(helm, "edge"))
    assert {"head", "branch-sh"} <= set(environments)
    assert all(env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" for env in environments.values()), environments
    out = render(helm, VALUE_FILES["edge"], ["--set", "serve.haproxyIngress=false"])
    assert out.returncode == 0, out.stderr
    off = ray_pod_environments([d for d in yaml.safe_load_all(out.stdout) if d])
    assert not any("RAY_SERVE_ENABLE_HA_PROXY" in env for env in off.values())


@pytest.mark.parametrize("name", sorted(VALUE_FILES))
def test_rbac_is_namespaced_and_grants_nothing_to_the_server_or_user_code(helm, name):
    """No ClusterRole or binding of any kind: the server calls no Kubernetes API and Ray pods run
    user code, so neither gets a role or a mounted token. Only with autoscaling does the head get a
    ServiceAccount with a token, for the Role KubeRay itself creates in the release's namespace."""
    docs = objects(helm, name)
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    for doc in docs:
        assert "namespace" not in doc["metadata"] or doc["metadata"]["namespace"] == "suanli"
    accounts = {sa["metadata"]["name"]: sa for sa in of_kind(docs, "ServiceAccount")}
    [deployment] = of_kind(docs, "Deployment")
    server = deployment["spec"]["template"]["spec"]
    assert server["automountServiceAccountToken"] is False
    assert accounts[server["serviceAccountName"]]["automountServiceAccountToken"] is False
    [ray] = of_kind(docs, "RayCluster")
    head = ray["spec"]["headGroupSpec"]["template"]["spec"]
    for worker_group in ray["spec"]["workerGroupSpecs"]:
        pod = worker_group["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert accounts[pod["serviceAccountName"]]["automountServiceAccountToken"] is False
    autoscaling = ray["spec"]["enableInTreeAutoscaling"]
    assert autoscaling is (name == "hardened")
    if autoscaling:  # KubeRay binds its autoscaler Role to this account; nothing else has a token
        assert head["serviceAccountName"] == "risk-suanli-ray-head" and "risk-suanli-ray-head" in accounts
    else:
        assert head["automountServiceAccountToken"] is False and head["serviceAccountName"] == "risk-suanli-ray"
        assert set(accounts) == {"risk-suanli-controller", "risk-suanli-ray"}


def test_the_server_calls_no_kubernetes_api():
    """Why the server's account has no role: nothing the server runs imports the Kubernetes client
    (cluster/kubernetes.py, node discovery for the scheduler's tests, is called by no server code).
    Wiring it in must come with a namespaced Role in templates/rbac.yaml."""
    users = []
    for path in [*(REPO / "runtime").rglob("*.py"), *(REPO / "cluster").rglob("*.py")]:
        text = path.read_text()
        if path.name != "kubernetes.py" and ("kubernetes_snapshot" in text or "from kubernetes" in text
                                             or "import kubernetes" in text or "cluster.kubernetes" in text):
            users.append(str(path.relative_to(REPO)))
    assert users == []


@pytest.mark.parametrize("name", sorted(VALUE_FILES))
def test_every_container_has_requests_limits_and_runs_as_non_root(helm, name):
    docs = objects(helm, name)
    pods = [d["spec"]["template"]["spec"] for d in of_kind(docs, "Deployment")]
    [ray] = of_kind(docs, "RayCluster")
    pods += [ray["spec"]["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in ray["spec"]["workerGroupSpecs"]]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_controller_wiring(helm):
    docs = objects(helm, "edge")
    [deployment] = of_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["suanli", "server"]
    assert "--lease-ttl" in container["command"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SUANLI_RAY_ADDRESS"] == "risk-suanli-head-svc:6379"
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "1"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["signing-keys"]["secret"]["secretName"] == "suanli-signing-keys"
    assert volumes["suanli-storage"]["persistentVolumeClaim"]["claimName"] == "suanli-runs"
    assert "--metrics-public" in container["command"]  # Prometheus scrapes without a token
    claims = [c["metadata"]["name"] for c in of_kind(docs, "PersistentVolumeClaim")]
    assert of_kind(docs, "ServiceMonitor") and claims == ["risk-suanli-state"]  # an existing claim: none made
    [ray] = of_kind(docs, "RayCluster")
    for group in [ray["spec"]["headGroupSpec"], *ray["spec"]["workerGroupSpecs"]]:  # the same files, same path
        pod = group["template"]["spec"]
        assert {"name": "suanli-storage", "persistentVolumeClaim": {"claimName": "suanli-runs"}} in pod["volumes"]
        assert {"name": "suanli-storage", "mountPath": "/var/lib/suanli"} in pod["containers"][0]["volumeMounts"]
    default = objects(helm, "default")
    assert of_kind(default, "PersistentVolumeClaim") and not of_kind(default, "ServiceMonitor")


def write_values(tmp_path, group_text):
    path = tmp_path / "values.yaml"
    path.write_text("workerGroups:\n- {name: g, tier: center, resources: {requests: {cpu: 1, memory: 1Gi}, "
                    "limits: {cpu: 1, memory: 1Gi}}, " + group_text + "}\n")
    return path


@pytest.mark.parametrize(
    "group, named",
    [
        ("deviceClass: tpu, replicas: 1", "workerGroups.0.deviceClass"),
        ("deviceClass: cpu, replicas: -1", "workerGroups.0.replicas"),
        ("deviceClass: nvidia-gpu, replicas: 1", "gpu is required"),
        ("deviceClass: nvidia-gpu, replicas: 1, gpu: {model: A100}", "workerGroups.0.gpu: count is required"),
    ],
)
def test_bad_values_fail_naming_the_value(helm, tmp_path, group, named):
    values = write_values(tmp_path, group)
    out = subprocess.run([helm, "template", "risk", str(CHART), "-f", str(values)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and named in out.stderr, out.stderr


def test_notes_tell_the_user_what_to_do_next(helm, tmp_path):
    import shutil

    copy = tmp_path / "suanli"
    shutil.copytree(CHART, copy)
    (copy / "files").mkdir()
    shutil.copy(copy / "templates" / "NOTES.txt", copy / "files" / "notes.txt")
    (copy / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n'
        '  notes: {{ tpl (.Files.Get "files/notes.txt") . | toJson }}\n')
    out = subprocess.run([helm, "template", "risk", str(copy), "--namespace", "risk", "--show-only",
                          "templates/zz-notes.yaml", "-f", str(copy / "ci" / "values-gpu.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    notes = yaml.safe_load(out.stdout)["data"]["notes"]
    assert "kubectl -n risk get raycluster risk-suanli" in notes
    assert "a100: nvidia-gpu" in notes and "openssl ecparam -name prime256v1" in notes


def test_several_servers_need_postgresql(helm):
    out = render(helm, extra=["--set", "controller.replicas=2"])
    assert out.returncode != 0 and "store.type" in out.stderr, out.stderr
    out = render(helm, extra=["--set", "controller.replicas=2", "--set", "store.type=postgresql"])
    assert out.returncode != 0 and "store.postgresql.existingSecret" in out.stderr, out.stderr
    out = render(helm, extra=["--set", "controller.replicas=3", "--set", "store.type=postgresql",
                              "--set", "store.postgresql.existingSecret=suanli-pg"])
    assert out.returncode == 0, out.stderr
    [deployment] = of_kind([d for d in yaml.safe_load_all(out.stdout) if d], "Deployment")
    assert deployment["spec"]["replicas"] == 3
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SUANLI_STORE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "suanli-pg", "key": "url"}


def test_hardened_defaults(helm):
    """Ray token auth everywhere, a NetworkPolicy in front of Ray, and neither the signing key nor
    the server's private state (admin token, audit key, store) in a pod that runs user code."""
    docs = objects(helm, "default")
    [cluster] = of_kind(docs, "RayCluster")
    pods = [cluster["spec"]["headGroupSpec"]["template"]["spec"]] + [
        g["template"]["spec"] for g in cluster["spec"]["workerGroupSpecs"]]
    for pod in pods:
        [container] = pod["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "risk-suanli-ray-auth", "key": "token"}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        assert "signing-keys" not in volumes and "state" not in volumes
        assert all("secret" not in v for v in volumes.values())
    [secret] = [d for d in of_kind(docs, "Secret") if d["metadata"]["name"] == "risk-suanli-ray-auth"]
    assert len(secret["data"]["token"]) >= 48
    [policy] = [p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "risk-suanli-ray"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"ray.io/cluster": "risk-suanli"}
    sources = [f["podSelector"]["matchLabels"] for f in policy["spec"]["ingress"][0]["from"]]
    assert {"ray.io/cluster": "risk-suanli"} in sources
    assert any(s.get("app.kubernetes.io/component") == "controller" for s in sources)
    [deployment] = of_kind(docs, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["SUANLI_STATE_DIR"]["value"] == "/var/lib/suanli-state" and env["RAY_AUTH_MODE"]["value"] == "token"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == "risk-suanli-state"
    command = spec["containers"][0]["command"]
    assert command[command.index("--runs-dir") + 1].startswith("/var/lib/suanli/")  # shared storage, not state
    assert "--metrics-public" not in command  # no ServiceMonitor: /metrics needs a token like every route
