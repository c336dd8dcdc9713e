"""The Helm chart rendered by a real helm, every object validated against the Kubernetes
schemas (kubernetes-validate) and the RayCluster against KubeRay's CRD fields, then checked for
what a platform engineer expects."""

import ipaddress
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


def docs_of(out):
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def ray_pods(docs) -> dict[str, dict]:
    """Each Ray pod template's spec, by head or worker group name."""
    [ray] = of_kind(docs, "RayCluster")
    return {"head": ray["spec"]["headGroupSpec"]["template"]["spec"]} | {
        g["groupName"]: g["template"]["spec"] for g in ray["spec"]["workerGroupSpecs"]}


@pytest.mark.parametrize("name", sorted(VALUE_FILES))
def test_every_ray_pod_runs_the_server_image(helm, name):
    """The attempt actor imports suanli (runtime, xgboost, lightgbm, onnxruntime) in the Ray pods,
    so they run the server's image, whose Ray is the RayCluster's rayVersion."""
    docs = objects(helm, name)
    [deployment] = of_kind(docs, "Deployment")
    server = deployment["spec"]["template"]["spec"]
    [container] = server["containers"]
    image = container["image"]
    assert image.startswith("registry.") and "rayproject/ray" not in image
    pods = ray_pods(docs)
    assert len(pods) == 1 + len(of_kind(docs, "RayCluster")[0]["spec"]["workerGroupSpecs"]) >= 2
    for group, pod in pods.items():
        assert [c["image"] for c in pod["containers"]] == [image], group
        assert pod["containers"][0]["imagePullPolicy"] == container["imagePullPolicy"]
        assert pod.get("imagePullSecrets") == server.get("imagePullSecrets"), group
    [ray] = of_kind(docs, "RayCluster")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert ray["spec"]["rayVersion"] == chart["annotations"]["suanli.io/ray-version"] == ray_module_version()


def ray_module_version() -> str:
    import ray

    return ray.__version__


def test_image_tag_defaults_to_the_app_version_and_follows_the_values(helm):
    docs = docs_of(render(helm, extra=["--set", "image.repository=reg.example/x/suanli", "--set", "image.tag=1.2.3"]))
    images = {c["image"] for pod in ray_pods(docs).values() for c in pod["containers"]}
    [deployment] = of_kind(docs, "Deployment")
    assert images == {deployment["spec"]["template"]["spec"]["containers"][0]["image"]} == {"reg.example/x/suanli:1.2.3"}
    default = objects(helm, "default")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert {c["image"] for pod in ray_pods(default).values() for c in pod["containers"]} == {
        f"registry.example.com/suanli/suanli:{chart['appVersion']}"}


METADATA = ipaddress.ip_address("169.254.169.254")


def egress_policy(docs) -> dict:
    [policy] = [p for p in of_kind(docs, "NetworkPolicy") if p["spec"]["policyTypes"] == ["Egress"]]
    return policy


@pytest.mark.parametrize("name", sorted(VALUE_FILES))
def test_ray_pods_egress_reaches_only_the_cluster_server_dns_and_storage(helm, name):
    docs = objects(helm, name)
    policy = egress_policy(docs)
    assert policy["spec"]["podSelector"]["matchLabels"] == {"ray.io/cluster": "risk-suanli"}
    [ray] = of_kind(docs, "RayCluster")
    pod_labels = [ray["spec"]["headGroupSpec"]["template"]["metadata"]["labels"]] + [
        g["template"]["metadata"]["labels"] for g in ray["spec"]["workerGroupSpecs"]]
    assert all(labels["app.kubernetes.io/instance"] == "risk" for labels in pod_labels)  # KubeRay adds ray.io/cluster
    rules = policy["spec"]["egress"]
    peers = [peer for rule in rules for peer in rule["to"]]
    assert all(rule.get("to") for rule in rules)  # a rule without `to` would admit every address
    [server] = [p for p in peers if p.get("podSelector", {}).get("matchLabels", {}).get(
        "app.kubernetes.io/component") == "controller"]
    assert server["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "risk"
    assert {"podSelector": {"matchLabels": {"ray.io/cluster": "risk-suanli"}}} in peers
    [dns_rule] = [r for r in rules if any("namespaceSelector" in p for p in r["to"])]
    assert dns_rule["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert sorted(p["protocol"] for p in dns_rule["ports"]) == ["TCP", "UDP"] and {p["port"] for p in dns_rule["ports"]} == {53}
    blocks = [p["ipBlock"] for p in peers if "ipBlock" in p]
    for block in blocks:
        network = ipaddress.ip_network(block["cidr"])
        assert METADATA not in network or any(METADATA in ipaddress.ip_network(e) for e in block.get("except", []))
        assert network.prefixlen >= 16
    for rule in rules:
        if any("ipBlock" in p for p in rule["to"]):
            assert rule["ports"], rule  # an address block is opened on its listed ports only
    values = yaml.safe_load((CHART / VALUE_FILES[name]).read_text()) if VALUE_FILES[name] else {}
    egress = values.get("networkPolicy", {}).get("egress", {})
    expected = egress.get("storage", []) + (egress.get("kubernetesAPI", []) if name == "hardened" else [])
    assert [b["cidr"] for b in blocks] == [e["cidr"] for e in expected]


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--set-json", 'networkPolicy.egress.storage=[{"cidr": "0.0.0.0/0", "ports": [443]}]'], "0.0.0.0/0 must be a /16"),
        (["--set-json", 'networkPolicy.egress.storage=[{"cidr": "169.254.169.254/32", "ports": [80]}]'],
         "outside 169.254.0.0/16"),
        (["--set-json", 'networkPolicy.egress.storage=[{"cidr": "10.0.0.0/8", "ports": [443]}]'], "10.0.0.0/8"),
        (["--set-json", 'networkPolicy.egress.storage=[{"cidr": "10.1.0.0/16"}]'], "ports is required"),
        (["--set-json", 'networkPolicy.egress.storage=[{"cidr": "s3.amazonaws.com", "ports": [443]}]'],
         "networkPolicy.egress.storage.0.cidr"),
        (["--set", "autoscaling.enabled=true"], "networkPolicy.egress.kubernetesAPI"),
    ],
)
def test_egress_refuses_the_metadata_address_and_open_ranges(helm, extra, named):
    out = render(helm, extra=extra)
    assert out.returncode != 0 and named in out.stderr, out.stderr


def test_egress_policy_can_be_turned_off_with_the_ingress_one(helm):
    docs = docs_of(render(helm, extra=["--set", "networkPolicy.enabled=false"]))
    assert not of_kind(docs, "NetworkPolicy")


def suanli_server_options() -> set[str]:
    """Every option the real `suanli server` command accepts."""
    import typer.main

    from runtime.cli.main import app

    command = typer.main.get_command(app).commands["server"]
    return {opt for param in command.params for opt in param.opts}


def test_tls_mounts_the_secret_starts_uvicorn_with_it_and_probes_https(helm):
    docs = objects(helm, "hardened")
    [deployment] = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["command"]
    assert command[command.index("--ssl-certfile") + 1] == "/etc/suanli/tls/tls.crt"
    assert command[command.index("--ssl-keyfile") + 1] == "/etc/suanli/tls/tls.key"
    flags = {word for word in command if word.startswith("--")}
    assert flags <= suanli_server_options()  # the real CLI takes every flag the chart passes
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"] == {"secretName": "suanli-api-tls", "defaultMode": 0o400}
    assert {"name": "tls", "mountPath": "/etc/suanli/tls", "readOnly": True} in container["volumeMounts"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "api", "scheme": "HTTPS"}
    assert container["ports"] == [{"name": "api", "containerPort": 8443}]
    [service] = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "risk-suanli-controller"]
    assert service["spec"]["ports"] == [{"name": "api", "port": 443, "targetPort": "api"}]
    [monitor] = of_kind(docs, "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https" and endpoint["tlsConfig"]["ca"]["secret"]["name"] == "suanli-api-tls"
    for ray_pod in ray_pods(docs).values():  # user code never sees the API's private key
        assert "tls" not in {v["name"] for v in ray_pod["volumes"]}


def test_without_tls_the_api_is_plain_http_and_tls_needs_a_secret(helm):
    [deployment] = of_kind(objects(helm, "default"), "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--ssl-certfile" not in container["command"] and container["livenessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert {word for word in container["command"] if word.startswith("--")} <= suanli_server_options()
    assert "tls" not in {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    out = render(helm, extra=["--set", "controller.tls.enabled=true"])
    assert out.returncode != 0 and "controller.tls" in out.stderr and "secretName" in out.stderr, out.stderr


def test_audit_verify_key_is_pinned_read_only_in_the_server_pod(helm):
    docs = objects(helm, "hardened")
    pem = yaml.safe_load((CHART / VALUE_FILES["hardened"]).read_text())["audit"]["verifyKey"]
    [config] = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "risk-suanli-audit-verify-key"]
    assert config["data"] == {"verify-key.pem": pem}
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    load_pem_public_key(config["data"]["verify-key.pem"].encode())  # the mounted file is a usable key
    [deployment] = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "audit-verify-key"]
    assert mount["readOnly"] is True
    assert env["SUANLI_AUDIT_VERIFY_KEY"] == f"{mount['mountPath']}/verify-key.pem" == "/etc/suanli/audit/verify-key.pem"
    [volume] = [v for v in pod["volumes"] if v["name"] == "audit-verify-key"]
    assert volume["configMap"]["name"] == "risk-suanli-audit-verify-key"
    assert not str(env.get("SUANLI_STATE_DIR", "")).startswith("/etc/suanli/audit")  # outside the log's directory
    default = objects(helm, "default")
    [plain] = of_kind(default, "Deployment")
    assert "SUANLI_AUDIT_VERIFY_KEY" not in {e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not [c for c in of_kind(default, "ConfigMap") if "audit" in c["metadata"]["name"]]
    out = render(helm, extra=["--set", "audit.verifyKey=not a key"])
    assert out.returncode != 0 and "audit.verifyKey" in out.stderr, out.stderr


# ---- every value is read --------------------------------------------------------------------

def leaves(value, path=()):
    """(path, value) of every setting: scalars, lists of scalars and empty mappings/lists; lists of
    mappings (worker groups) are walked by index."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            yield from leaves(item, (*path, i))
    else:
        yield path, value


# A different, valid value where "the same type, changed" is not one; and values that only matter
# when another is set (the context, given to both renders).
ALTERNATIVES = {  # enumerations: the first of these that differs from the setting
    "image.pullPolicy": ("Always", "Never"), "controller.policy": ("fifo", "las"),
    "controller.service.type": ("NodePort", "ClusterIP"), "controller.replicas": (0, 1),
    "store.type": ("postgresql", "sqlite"),
}
CHANGED = {
    "workerGroups.0.deviceClass": "edge",
    "workerGroups.1.edge.selector": "role",
    # pinned by the schema to one value; their mappings are read whole (toYaml), as their other settings show
    "podSecurityContext.runAsNonRoot": None, "containerSecurityContext.allowPrivilegeEscalation": None,
    "storage.pvc.size": "60Gi", "state.pvc.size": "6Gi", "storage.pvc.accessModes": ["ReadWriteOncePod"],
    "state.pvc.accessModes": ["ReadWriteOncePod"], "workerGroups.0.npu.resourceName": "huawei.com/Ascend310P",
    "audit.verifyKey": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
    "networkPolicy.egress.storage": [{"cidr": "10.9.0.0/24", "ports": [443]}],
    "networkPolicy.egress.kubernetesAPI": [{"cidr": "10.96.0.1/32", "ports": [443]}],
    "imagePullSecrets": [{"name": "registry"}], "head.tolerations": [{"key": "k", "operator": "Exists"}],
    "controller.tolerations": [{"key": "k", "operator": "Exists"}],
}
CONTEXT = {
    "store.postgresql": {("store", "type"): "postgresql", ("store", "postgresql", "existingSecret"): "pg"},
    "store.type": {("store", "postgresql", "existingSecret"): "pg", ("controller", "replicas"): 1},
    "controller.tls": {("controller", "tls", "enabled"): True, ("controller", "tls", "secretName"): "api-tls"},
    "networkPolicy.egress.kubernetesAPI": {("autoscaling", "enabled"): True, ("networkPolicy", "egress", "kubernetesAPI"):
                                           [{"cidr": "10.96.0.2/32", "ports": [6443]}]},
    "autoscaling.enabled": {("networkPolicy", "egress", "kubernetesAPI"): [{"cidr": "10.96.0.1/32", "ports": [443]}]},
    "serviceMonitor": {("serviceMonitor", "enabled"): True},
    "signing.privateKey": {("signing", "publicKey"): "PUB"},
    "signing.publicKey": {("signing", "privateKey"): "PRIV"},
    "workerGroups.0.deviceClass": {("workerGroups", 0, "tier"): "edge", ("workerGroups", 0, "site"): "s",
                                   ("workerGroups", 0, "edge"): {"nodePool": "p"}},
}


def changed(path: str, value):
    """Another value for the setting at `path` that the chart accepts, or None when the setting
    cannot change alone."""
    if path in ALTERNATIVES:
        return next(v for v in ALTERNATIVES[path] if v != value)
    if path in CHANGED:
        return CHANGED[path]
    if path.endswith(".cidr"):
        return "10.77.0.0/24"
    if path.endswith(".tier"):
        return "edge" if value == "center" else None  # an edge group stays edge (schema)
    if path.endswith(".deviceClass"):
        return None  # fixed by the group's other fields; workerGroups.0.deviceClass is changed with its context
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-x9" if value else "x9"
    if isinstance(value, dict):
        return {"suanli.io/x": "y"}
    if isinstance(value, list):
        return [*value, value[0]] if value else ["x"]
    raise AssertionError(f"{path}: no change known for {value!r}")


def with_settings(values: dict, settings: dict) -> dict:
    """A deep copy of `values` with each (path -> value) of `settings` set."""
    import copy

    result = copy.deepcopy(values)
    for path, value in settings.items():
        node = result
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[path[-1]] = value
    return result


def stable(out) -> str:
    """The rendered objects with the per-render random Ray token blanked."""
    docs = docs_of(out)
    for doc in docs:
        if doc["kind"] == "Secret" and doc["metadata"]["name"].endswith("-ray-auth"):
            doc["data"]["token"] = "-"
    return yaml.safe_dump_all(docs)


def dead_values(helm, chart: Path, values_file: str | None, workdir: Path) -> list[str]:
    """The settings of `values_file` (or the chart's values.yaml) whose change leaves the rendered
    chart as it was: read by no template. A change the chart refuses is reported too."""
    import concurrent.futures
    import functools

    values = yaml.safe_load((chart / (values_file or "values.yaml")).read_text())

    @functools.cache
    def rendered(settings: tuple) -> str | subprocess.CompletedProcess:
        """The chart rendered with `settings` ((path, JSON value), ...) applied to the values."""
        file = workdir / f"values-{abs(hash(settings))}.yaml"
        file.write_text(yaml.safe_dump(with_settings(values, {path: json.loads(v) for path, v in settings})))
        out = subprocess.run([helm, "template", "risk", str(chart), "--namespace", "suanli", "-f", str(file)],
                             capture_output=True, text=True, timeout=60)
        return stable(out) if out.returncode == 0 else out

    def check(item):
        path, value = item
        dotted = ".".join(str(p) for p in path)
        context = next((c for key, c in CONTEXT.items() if dotted == key or dotted.startswith(key + ".")), {})
        new = changed(dotted, context.get(path, value))
        if new is None:
            return None
        context = tuple((k, json.dumps(v)) for k, v in context.items())  # the change below overrides its own path
        before, after = rendered(context), rendered((*context, (path, json.dumps(new))))
        for out in (before, after):
            if not isinstance(out, str):
                return f"{dotted}: could not render ({out.stderr.strip()[:300]})"
        return dotted if before == after else None

    settings = [(p, v) for p, v in leaves(values) if p]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        return [found for found in pool.map(check, settings) if found]


@pytest.mark.parametrize("name", sorted(VALUE_FILES))
def test_every_value_is_read_by_a_template(helm, name, tmp_path):
    assert dead_values(helm, CHART, VALUE_FILES[name], tmp_path) == []


def test_a_dead_value_is_found(helm, tmp_path):
    import shutil

    copy = tmp_path / "suanli"
    shutil.copytree(CHART, copy)
    values = copy / "values.yaml"
    values.write_text(values.read_text().replace("serve:\n", "serve:\n  unusedKnob: 3\n", 1))
    schema = json.loads((copy / "values.schema.json").read_text())
    schema["properties"]["serve"]["properties"]["unusedKnob"] = {"type": "integer"}
    (copy / "values.schema.json").write_text(json.dumps(schema))
    assert dead_values(helm, copy, None, tmp_path) == ["serve.unusedKnob"]
