"""Offline checks of Herald's deployment files; `make test` runs it (through check.sh).

1. Renders every overlay (and the production overlay with each component) with the pinned
   `kubectl kustomize` and validates every object against the Kubernetes JSON schemas of the
   oldest and newest supported Kubernetes versions (kubernetes-validate, strict: unknown fields
   fail); KEDA's ScaledObject against deploy/k8s/schemas/, plus checks of its trigger.
2. Checks the objects against Herald itself: every HERALD_* environment variable a workload gets
   is a setting in crates/herald-server/src/herald.default.toml (or a flag's variable), with a
   value of the right type; subcommands, ports, probe paths and the shutdown budget
   (terminationGracePeriodSeconds) agree with the code; security contexts, selectors, the NATS
   seeds and replicas, and the dispatchers' NetworkPolicy hold what they promise.
3. Checks that every metric (and label) named by the Prometheus rules in deploy/prometheus/ and
   the Grafana dashboards in deploy/grafana/ is one Herald declares in crates/*/src/metrics.rs,
   parsing each PromQL expression.

Needs no cluster and no network. Run it with the interpreter that deploy/k8s/tools.sh set up:
deploy/k8s/check.sh.
"""

from __future__ import annotations

import base64
import copy
import functools
import glob
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import promql_parser
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(ROOT, "deploy", "k8s")
KUBECTL = os.environ.get("HERALD_KUBECTL", "kubectl")
# Oldest and newest Kubernetes the manifests are validated against (Makefile: K8S_VERSIONS).
K8S_VERSIONS = os.environ.get("HERALD_K8S_VERSIONS", "1.30 1.37").split()

# What `kubectl kustomize` renders: each overlay, and the production overlay with each component.
OVERLAYS = ["overlays/dev", "overlays/production"]
COMPONENTS = ["components/durability-sync-always", "components/keda-dispatch"]

# Labels Prometheus adds to every scraped series (target and Kubernetes discovery labels), and the
# histogram bucket label; any other label in a query must be one Herald declares.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "endpoint"}

problems: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


def read(path: str) -> str:
    with open(os.path.join(ROOT, path), encoding="utf-8") as file:
        return file.read()


# ---------------------------------------------------------------------------------------------
# What Herald has: settings, flags' variables, subcommands, probe paths, metrics, shutdown.


def flatten(table: dict, prefix: str = "") -> dict[str, object]:
    leaves: dict[str, object] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            leaves.update(flatten(value, path + "."))
        else:
            leaves[path] = value
    return leaves


SETTINGS = flatten(tomllib.loads(read("crates/herald-server/src/herald.default.toml")))
MAIN_RS = read("crates/herald-server/src/main.rs")
# Variables clap reads for global flags (`#[arg(..., env = "HERALD_CONFIG")]`): not settings, but
# Herald reads them.
FLAG_VARIABLES = set(re.findall(r'env\s*=\s*"(HERALD_[A-Z0-9_]+)"', MAIN_RS))
# Subcommands: the variants of `enum Command`, lowercased as clap names them.
_command_enum = re.search(r"enum Command \{(.*?)\n\}", MAIN_RS, re.S)
SUBCOMMANDS = (
    {name.lower() for name in re.findall(r"^\s+([A-Z][a-z]+)\(", _command_enum.group(1), re.M)}
    if _command_enum
    else set()
)
ADMIN_PATHS = set(re.findall(r'\.route\("(/[a-z]+)"', read("crates/herald-runtime/src/admin.rs")))
APP_RS = read("crates/herald-server/src/app.rs")


def shutdown_constants() -> tuple[float, float]:
    """Returns what app.rs adds to dispatcher.shutdown_grace_period for each role, and how long it
    waits for the NATS connection to close, in seconds."""
    role_margin = re.search(r"shutdown_grace_period \+ Duration::from_secs\((\d+)\)", APP_RS)
    close = re.search(r"nats\.close\(Duration::from_secs\((\d+)\)\)", APP_RS)
    if not role_margin or not close:
        print(
            "warning: crates/herald-server/src/app.rs no longer reads as the shutdown budget "
            "expects (grace + 5 s per role, 5 s to close NATS); check terminationGracePeriodSeconds "
            "by hand and update deploy/k8s/check.py"
        )
        return 5.0, 5.0
    return float(role_margin.group(1)), float(close.group(1))


ROLE_MARGIN_SECONDS, NATS_CLOSE_SECONDS = shutdown_constants()


def herald_metrics() -> tuple[dict[str, set[str]], set[str]]:
    """Returns every metric declared in crates/*/src/metrics.rs with its labels, and the names of
    the histograms among them."""
    metrics: dict[str, set[str]] = {}
    histograms: set[str] = set()
    for path in sorted(glob.glob(os.path.join(ROOT, "crates", "*", "src", "metrics.rs"))):
        with open(path, encoding="utf-8") as file:
            source = file.read()
        for match in re.finditer(r'"(herald_[a-z0-9_]+)"', source):
            name = match.group(1)
            # The labels are the first `&[...]` after the name, unless another metric or
            # registration starts first (IntGauge::new and IntCounter::new take none).
            rest = source[match.end() :]
            labels_match = re.search(r'&\[([^\]]*)\]', rest)
            next_metric = re.search(r'"herald_[a-z0-9_]+"|registry', rest)
            labels: set[str] = set()
            if labels_match and (not next_metric or labels_match.start() < next_metric.start()):
                labels = set(re.findall(r'"([a-z_]+)"', labels_match.group(1)))
            metrics[name] = labels
            preceding = source[max(0, match.start() - 80) : match.start()]
            if "HistogramOpts::new(" in preceding:
                histograms.add(name)
    return metrics, histograms


METRICS, HISTOGRAMS = herald_metrics()


def metric_labels(name: str) -> set[str] | None:
    """Returns the labels of a series name Herald exports (histograms export _bucket, _sum and
    _count), or None when Herald exports no such series."""
    if name in METRICS and name not in HISTOGRAMS:
        return METRICS[name]
    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and base in HISTOGRAMS:
            return METRICS[base] | extra
    return None


def parse_duration(text: str) -> float | None:
    """Parses a duration as Herald does (humantime 2: "20s", "2m", "7days", "1h 30m") into
    seconds; None when humantime would refuse it."""
    units = {}
    for names, seconds in (
        (("nanos", "nsec", "ns"), 1e-9),
        (("usec", "us", "\u00b5s"), 1e-6),
        (("millis", "msec", "ms"), 1e-3),
        (("seconds", "second", "secs", "sec", "s"), 1),
        (("minutes", "minute", "min", "mins", "m"), 60),
        (("hours", "hour", "hr", "hrs", "h"), 3600),
        (("days", "day", "d"), 86400),
        (("weeks", "week", "wk", "wks", "w"), 604800),
        (("months", "month", "M"), 2_630_016),
        (("years", "year", "yr", "yrs", "y"), 31_557_600),
    ):
        units.update(dict.fromkeys(names, seconds))
    text = text.strip()
    if not re.fullmatch(r"(\d+\s*[a-zA-Z\u00b5]+\s*)+", text):
        return None
    parts = re.findall(r"(\d+)\s*([a-zA-Z\u00b5]+)", text)
    if any(unit not in units for _, unit in parts):
        return None
    return sum(int(amount) * units[unit] for amount, unit in parts)


# ---------------------------------------------------------------------------------------------
# Rendering and schema validation.


def render(directory: str) -> list[dict]:
    result = subprocess.run(
        [KUBECTL, "kustomize", directory], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        problem(os.path.relpath(directory, ROOT), f"kustomize failed: {result.stderr.strip()}")
        return []
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_with_component(component: str) -> list[dict]:
    """Renders overlays/production with `component`, from a kustomization made for it."""
    with tempfile.TemporaryDirectory(prefix="herald-k8s-") as directory:
        # kustomize refuses absolute paths: name both relative to the temporary directory.
        with open(os.path.join(K8S, "overlays/production/kustomization.yaml"), encoding="utf-8") as file:
            namespace = yaml.safe_load(file)["namespace"]
        # As an operator's overlay would: the component's own objects need the namespace too.
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": [os.path.relpath(os.path.join(K8S, "overlays/production"), directory)],
            "components": [os.path.relpath(os.path.join(K8S, component), directory)],
        }
        with open(os.path.join(directory, "kustomization.yaml"), "w", encoding="utf-8") as file:
            yaml.safe_dump(kustomization, file)
        return render(directory)


# kubernetes-validate reads its schema files on every call; they never change during a run.
kubernetes_validate.utils.schema_contents = functools.lru_cache(maxsize=None)(
    kubernetes_validate.utils.schema_contents
)

with open(os.path.join(K8S, "schemas", "scaledobject-keda-v1alpha1.json"), encoding="utf-8") as f:
    SCALED_OBJECT_SCHEMA = json.load(f)
CUSTOM_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT_SCHEMA}


def name_of(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def validate_schemas(where: str, objects: list[dict]) -> None:
    for obj in objects:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in CUSTOM_SCHEMAS:
            validator = jsonschema.Draft202012Validator(CUSTOM_SCHEMAS[key])
            for error in validator.iter_errors(obj):
                path = "/".join(str(part) for part in error.absolute_path)
                problem(f"{where}: {name_of(obj)}", f"{path}: {error.message}")
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problem(
                    f"{where}: {name_of(obj)}",
                    f"no schema for {obj.get('apiVersion')} in Kubernetes {version} (and none "
                    "in deploy/k8s/schemas/)",
                )
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(part) for part in error.path)
                problem(f"{where}: {name_of(obj)}", f"Kubernetes {version}: {path}: {error.message}")


# ---------------------------------------------------------------------------------------------
# Herald-specific checks of one rendered set of objects.


def pod_spec(obj: dict) -> dict | None:
    if obj.get("kind") in ("Deployment", "StatefulSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def find(objects: list[dict], kind: str, name: str) -> dict | None:
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            return obj
    return None


def is_herald(container: dict) -> bool:
    image = container.get("image", "")
    return image.split("@")[0].rsplit(":", 1)[0].split("/")[-1] == "herald"


def container_environment(where: str, objects: list[dict], container: dict) -> dict[str, dict]:
    """Returns every variable a container gets, name to source: {"value": ...},
    {"secret": (name, key)} or {"other": ...}."""
    environment: dict[str, dict] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config_map = find(objects, "ConfigMap", source["configMapRef"]["name"])
            if config_map is None:
                problem(where, f"envFrom names ConfigMap {source['configMapRef']['name']}, not rendered")
                continue
            for key, value in config_map.get("data", {}).items():
                environment[source.get("prefix", "") + key] = {"value": value}
        else:
            problem(where, "envFrom other than a ConfigMap: give secrets as env[].valueFrom.secretKeyRef")
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = {"value": variable["value"]}
        elif "secretKeyRef" in variable.get("valueFrom", {}):
            ref = variable["valueFrom"]["secretKeyRef"]
            environment[variable["name"]] = {"secret": (ref["name"], ref["key"])}
        else:
            environment[variable["name"]] = {"other": variable.get("valueFrom")}
    return environment


def check_value_type(where: str, setting: str, value: str) -> None:
    default = SETTINGS[setting]
    if isinstance(default, bool):
        if value not in ("true", "false"):
            problem(where, f"{setting} is a boolean: {value!r} is neither true nor false")
    elif isinstance(default, int):
        if not re.fullmatch(r"\d+", value):
            problem(where, f"{setting} is an integer: {value!r} is not")
    elif isinstance(default, list):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list):
            problem(where, f"{setting} is a list: give it as JSON, e.g. [\"a\",\"b\"], not {value!r}")
        elif setting.endswith("auth.api_tokens") and any(
            not isinstance(token, str) or len(token) < 16 for token in parsed
        ):
            problem(where, f"{setting}: every token must be a string of 16+ characters")
    elif isinstance(default, str) and parse_duration(default) is not None:
        if parse_duration(value) is None:
            problem(where, f"{setting} is a duration like {default!r}: {value!r} is not")


def effective_setting(environment: dict[str, dict], setting: str) -> object:
    variable = "HERALD_" + "__".join(part.upper() for part in setting.split("."))
    source = environment.get(variable)
    if source and "value" in source:
        return source["value"]
    return SETTINGS[setting]


def check_environment(where: str, objects: list[dict], environment: dict[str, dict]) -> None:
    for variable, source in sorted(environment.items()):
        if not variable.startswith("HERALD_"):
            continue
        if variable in FLAG_VARIABLES:
            continue
        if "__" not in variable:
            problem(
                where,
                f"{variable} is neither a setting (HERALD_<SECTION>__<KEY>) nor a flag's variable "
                f"({', '.join(sorted(FLAG_VARIABLES))}): Herald would ignore it",
            )
            continue
        setting = ".".join(part.lower() for part in variable[len("HERALD_") :].split("__"))
        if setting not in SETTINGS:
            problem(where, f"{variable} names {setting}, which is not in herald.default.toml")
            continue
        if "value" in source:
            check_value_type(where, setting, source["value"])
        elif "secret" in source:
            secret_name, key = source["secret"]
            secret = find(objects, "Secret", secret_name)
            if secret is None:
                # Created by the operator (production): nothing to read here.
                continue
            encoded = secret.get("data", {}).get(key)
            plain = secret.get("stringData", {}).get(key)
            if encoded is None and plain is None:
                problem(where, f"{variable}: Secret {secret_name} has no key {key}")
                continue
            value = plain if plain is not None else base64.b64decode(encoded).decode()
            check_value_type(where, setting, value)


def check_security(where: str, spec: dict) -> None:
    pod_security = spec.get("securityContext", {})
    if pod_security.get("runAsNonRoot") is not True:
        problem(where, "securityContext.runAsNonRoot must be true")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "securityContext.seccompProfile.type must be RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problem(where, "automountServiceAccountToken must be false (nothing here calls the API)")
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        security = container.get("securityContext", {})
        name = f"{where}: container {container['name']}"
        if security.get("readOnlyRootFilesystem") is not True:
            problem(name, "readOnlyRootFilesystem must be true")
        if security.get("allowPrivilegeEscalation") is not False:
            problem(name, "allowPrivilegeEscalation must be false")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problem(name, "capabilities.drop must include ALL")
        if "resources" not in container or "requests" not in container["resources"]:
            problem(name, "resources.requests must be set")


def port_of(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def check_herald_workload(where: str, objects: list[dict], obj: dict, uid: int | None) -> None:
    spec = pod_spec(obj)
    containers = [container for container in spec["containers"] if is_herald(container)]
    for container in containers:
        name = f"{where}: {name_of(obj)}"
        args = container.get("args", [])
        if not args or args[0] not in SUBCOMMANDS - {"dev"}:
            problem(name, f"args must start with a role subcommand ({sorted(SUBCOMMANDS - {'dev'})}), not {args}")
            continue
        role = args[0]
        if spec.get("enableServiceLinks") is not False:
            problem(name, "enableServiceLinks must be false (Service variables are HERALD_-prefixed)")
        if uid is not None and spec.get("securityContext", {}).get("runAsUser") != uid:
            problem(name, f"runAsUser must be the image's user, {uid} (Dockerfile USER)")
        environment = container_environment(name, objects, container)
        check_environment(name, objects, environment)

        # Ports: what the container declares is what Herald listens on.
        ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
        expected = {"admin": port_of(effective_setting(environment, "listen.admin"))}
        if role in ("ingest", "all"):
            expected["http"] = port_of(effective_setting(environment, "listen.ingest"))
        if role in ("control", "all"):
            expected["grpc"] = port_of(effective_setting(environment, "listen.control"))
        for port_name, port in expected.items():
            if ports.get(port_name) != port:
                problem(name, f"containerPort {port_name!r} must be {port} (Herald's listen settings)")

        # Probes on the admin port, on paths the admin listener serves.
        for probe_name, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            probe = container.get(probe_name, {}).get("httpGet")
            if probe is None:
                problem(name, f"{probe_name} must be an httpGet on the admin port")
                continue
            if probe.get("path") not in ADMIN_PATHS or probe.get("path") != path:
                problem(name, f"{probe_name} path must be {path} (admin.rs serves {sorted(ADMIN_PATHS)})")
            if probe.get("port") not in ("admin", expected["admin"]):
                problem(name, f"{probe_name} must probe the admin port")
        startup = container.get("startupProbe", {}).get("httpGet")
        if startup is not None and startup.get("path") not in ADMIN_PATHS:
            problem(name, f"startupProbe path {startup.get('path')} is not served by admin.rs")

        # The shutdown budget: preStop sleep, Herald's pre-stop delay (ingest and control serve on,
        # not ready), one bounded stop of every role together, closing NATS.
        grace_text = str(effective_setting(environment, "dispatcher.shutdown_grace_period"))
        grace = parse_duration(grace_text)
        if grace is None:
            problem(name, f"dispatcher.shutdown_grace_period {grace_text!r} is not a duration")
            continue
        delay_text = str(effective_setting(environment, "shutdown.pre_stop_delay"))
        delay = parse_duration(delay_text)
        if delay is None:
            problem(name, f"shutdown.pre_stop_delay {delay_text!r} is not a duration")
            continue
        serves_traffic = role in ("ingest", "control", "all")
        if not serves_traffic:
            delay = 0
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        needed = pre_stop + delay + grace + ROLE_MARGIN_SECONDS + NATS_CLOSE_SECONDS
        termination = spec.get("terminationGracePeriodSeconds", 30)
        if termination < needed + 5:
            problem(
                name,
                f"terminationGracePeriodSeconds {termination} does not cover the drain: preStop "
                f"{pre_stop} s + shutdown.pre_stop_delay {delay:g} s + shutdown_grace_period "
                f"{grace_text} + {ROLE_MARGIN_SECONDS:g} s + {NATS_CLOSE_SECONDS:g} s to close NATS "
                f"+ 5 s margin = {needed + 5:g} s",
            )
        if serves_traffic and pre_stop + delay == 0:
            problem(
                name,
                "shutdown.pre_stop_delay (or a preStop sleep) must let the Service drop the pod "
                "before it stops accepting",
            )

        check_nats_seeds(name, objects, environment)


def check_migrate_job(where: str, objects: list[dict], obj: dict, uid: int | None) -> None:
    """The migrate Job runs `herald migrate` with the roles' settings."""
    spec = pod_spec(obj)
    name = f"{where}: {name_of(obj)}"
    containers = [container for container in spec["containers"] if is_herald(container)]
    if len(containers) != 1:
        problem(name, "must run one Herald container")
        return
    container = containers[0]
    if container.get("args") != ["migrate"]:
        problem(name, f"args must be [migrate], not {container.get('args')}")
    if "migrate" not in SUBCOMMANDS:
        problem(name, "herald has no migrate subcommand (crates/herald-server/src/main.rs)")
    if spec.get("restartPolicy") not in ("OnFailure", "Never"):
        problem(name, "restartPolicy must be OnFailure or Never")
    if uid is not None and spec.get("securityContext", {}).get("runAsUser") != uid:
        problem(name, f"runAsUser must be the image's user, {uid} (Dockerfile USER)")
    environment = container_environment(name, objects, container)
    if not any(
        source.get("configMapRef", {}).get("name", "").startswith("herald-settings")
        for source in container.get("envFrom", [])
    ):
        problem(name, "must read the roles' settings (envFrom ConfigMap herald-settings)")
    check_environment(name, objects, environment)
    check_nats_seeds(name, objects, environment)


def check_nats_seeds(where: str, objects: list[dict], environment: dict[str, dict]) -> None:
    """Every host in nats.url is a Service or a StatefulSet pod rendered here, and streams are not
    replicated on more nodes than there are."""
    statefulset = find(objects, "StatefulSet", "nats")
    num_nodes = statefulset["spec"].get("replicas", 1) if statefulset else 0
    for url in str(effective_setting(environment, "nats.url")).split(","):
        host = re.sub(r"^nats://", "", url.strip()).split(":")[0]
        labels = host.split(".")
        pod = re.fullmatch(r"nats-(\d+)", labels[0])
        if len(labels) >= 2 and pod and find(objects, "Service", labels[1]):
            if int(pod.group(1)) >= num_nodes:
                problem(where, f"nats.url names {host}, but StatefulSet nats has {num_nodes} pods")
        elif not find(objects, "Service", labels[0]):
            problem(where, f"nats.url host {host} is neither a Service nor a NATS pod rendered here")
    replicas = int(effective_setting(environment, "nats.events.replicas"))
    if replicas > num_nodes:
        problem(where, f"nats.events.replicas is {replicas}, but NATS has {num_nodes} nodes")
    if num_nodes >= 3 and replicas < 3:
        problem(where, f"NATS has {num_nodes} nodes: nats.events.replicas should be 3, not {replicas}")


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", selector).items())


def check_selectors(where: str, objects: list[dict]) -> None:
    templates = [
        (obj, obj["spec"]["template"]["metadata"].get("labels", {}))
        for obj in objects
        if obj.get("kind") in ("Deployment", "StatefulSet", "Job")
    ]
    for obj in objects:
        kind = obj.get("kind")
        selector = None
        if kind == "Service":
            selector = obj["spec"].get("selector")
        elif kind in ("PodDisruptionBudget", "NetworkPolicy"):
            selector = obj["spec"].get("selector") or obj["spec"].get("podSelector")
        if selector is None:
            continue
        if not any(selects(selector, labels) for _, labels in templates):
            problem(f"{where}: {name_of(obj)}", f"selector {selector} matches no pod rendered here")
        if kind == "Service":
            for port in obj["spec"].get("ports", []):
                target = port.get("targetPort")
                if isinstance(target, str) and not any(
                    target in [p.get("name") for c in pod_spec(w)["containers"] for p in c.get("ports", [])]
                    for w, labels in templates
                    if selects(selector, labels)
                ):
                    problem(f"{where}: {name_of(obj)}", f"targetPort {target!r} is no port of its pods")
    for obj in objects:
        if obj.get("kind") == "HorizontalPodAutoscaler" or obj.get("kind") == "ScaledObject":
            target = obj["spec"]["scaleTargetRef"]
            if not find(objects, target.get("kind", "Deployment"), target["name"]):
                problem(f"{where}: {name_of(obj)}", f"scales {target['name']}, not rendered here")


PRIVATE_RANGES = [
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "fc00::/7", "fe80::/10",
]


def check_dispatch_network_policy(where: str, objects: list[dict], dev: bool) -> None:
    policy = find(objects, "NetworkPolicy", "herald-dispatch")
    if policy is None:
        problem(where, "NetworkPolicy herald-dispatch is missing")
        return
    spec = policy["spec"]
    if "Egress" not in spec.get("policyTypes", []):
        problem(where, "NetworkPolicy herald-dispatch must restrict Egress")
    egress = spec.get("egress", [])
    peers = [(peer, rule.get("ports", [])) for rule in egress for peer in rule.get("to", [])]
    if not any(
        selects({"app.kubernetes.io/name": "nats"}, peer.get("podSelector", {}).get("matchLabels", {}))
        and any(port.get("port") == 4222 for port in ports)
        for peer, ports in peers
    ):
        problem(where, "herald-dispatch egress must allow NATS on 4222")
    if not any(
        any(port.get("port") == 53 and port.get("protocol") == "UDP" for port in ports)
        for _, ports in peers
    ):
        problem(where, "herald-dispatch egress must allow DNS (53/UDP)")
    blocks = [peer["ipBlock"] for peer, _ in peers if "ipBlock" in peer]
    if not blocks:
        problem(where, "herald-dispatch egress must allow the internet by ipBlock")
    if dev:
        return
    for block in blocks:
        cidr = ipaddress.ip_network(block["cidr"])
        excepted = [ipaddress.ip_network(item) for item in block.get("except", [])]
        for private in map(ipaddress.ip_network, PRIVATE_RANGES):
            if private.version != cidr.version or not private.subnet_of(cidr):
                continue
            if not any(private.subnet_of(item) for item in excepted if item.version == private.version):
                problem(where, f"herald-dispatch egress to {cidr} must except {private}")


def check_scaled_object(where: str, objects: list[dict], obj: dict, namespace: str | None) -> None:
    name = f"{where}: {name_of(obj)}"
    known = {
        "natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold",
        "activationLagThreshold", "useHttps",
    }
    streams = set(re.findall(r'"(HERALD_[A-Z_]+)"', read("crates/herald-nats/src/lib.rs")))
    for trigger in obj["spec"]["triggers"]:
        metadata = trigger["metadata"]
        if trigger["type"] != "nats-jetstream":
            problem(name, f"trigger type {trigger['type']}: only nats-jetstream is checked here")
            continue
        for key in sorted(set(metadata) - known):
            problem(name, f"nats-jetstream trigger has no parameter {key}")
        for key in ("natsServerMonitoringEndpoint", "account", "stream", "consumer"):
            if not metadata.get(key):
                problem(name, f"nats-jetstream trigger needs {key}")
        for key in ("lagThreshold", "activationLagThreshold"):
            if key in metadata and not re.fullmatch(r"\d+", metadata[key]):
                problem(name, f"{key} must be an integer, not {metadata[key]!r}")
        # A subscription's durable consumer is named after it (herald-dispatcher's worker.rs).
        consumer = metadata.get("consumer", "")
        if consumer == "sub_REPLACE_WITH_SUBSCRIPTION_ID":
            print(f"note: {name}: the consumer is the component's placeholder: patch in real subscription ids")
        elif consumer and not re.fullmatch(r"sub_[0-9A-HJKMNP-TV-Z]{26}", consumer):
            problem(name, f"consumer {consumer!r} is no subscription id (sub_<ULID>)")
        if streams and metadata.get("stream") not in streams:
            problem(name, f"stream {metadata.get('stream')} is not a Herald stream ({sorted(streams)})")
        endpoint = metadata.get("natsServerMonitoringEndpoint", "")
        host, _, port = endpoint.partition(":")
        labels = host.split(".")
        service = find(objects, "Service", labels[0])
        if service is None or port not in [str(p["port"]) for p in service["spec"]["ports"]]:
            problem(name, f"natsServerMonitoringEndpoint {endpoint} is no Service port rendered here")
        # KEDA's operator runs in its own namespace: the endpoint must name this one.
        if namespace and (len(labels) < 2 or labels[1] != namespace):
            problem(name, f"natsServerMonitoringEndpoint {endpoint} must name namespace {namespace}")
    target = find(objects, "Deployment", obj["spec"]["scaleTargetRef"]["name"])
    if target is not None and "replicas" in target["spec"]:
        problem(name, f"{name_of(target)} must not set replicas: KEDA owns them")


def dockerfile_user() -> int | None:
    path = os.path.join(ROOT, "Dockerfile")
    if not os.path.exists(path):
        problem("Dockerfile", "missing")
        return None
    with open(path, encoding="utf-8") as file:
        users = re.findall(r"^USER\s+(\S+)", file.read(), re.M)
    if not users or not users[-1].split(":")[0].isdigit() or users[-1].split(":")[0] == "0":
        problem("Dockerfile", "the last stage must run as a numeric non-root USER")
        return None
    return int(users[-1].split(":")[0])


def check_rendered(where: str, objects: list[dict], uid: int | None) -> None:
    validate_schemas(where, objects)
    namespaces = {obj["metadata"].get("namespace") for obj in objects if obj.get("kind") != "Namespace"}
    namespace = next(iter(namespaces)) if len(namespaces) == 1 else None
    if namespace is None:
        problem(where, f"objects must share one namespace, not {sorted(map(str, namespaces))}")
    dev = where.startswith("overlays/dev")
    production = where.startswith("overlays/production")
    makefile = read("Makefile")
    nats_version = re.search(r"^NATS_SERVER_VERSION \?= (\S+)", makefile, re.M)
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            if obj.get("kind") == "ScaledObject":
                check_scaled_object(where, objects, obj, namespace)
            continue
        check_security(f"{where}: {name_of(obj)}", spec)
        for container in spec["containers"]:
            image = container.get("image", "")
            if is_herald(container):
                tag = image.split("@")[0].rsplit(":", 1)[1] if ":" in image.split("/")[-1] else "latest"
                if production and tag == "latest":
                    problem(f"{where}: {name_of(obj)}", "production must pin Herald's image, not latest")
            elif image.split(":")[0].split("/")[-1] == "nats" and nats_version:
                if not image.split(":")[-1].startswith(nats_version.group(1)):
                    problem(
                        f"{where}: {name_of(obj)}",
                        f"image {image}: use the nats-server Herald is tested against, "
                        f"{nats_version.group(1)} (Makefile NATS_SERVER_VERSION)",
                    )
        if obj.get("kind") == "Job":
            check_migrate_job(where, objects, obj, uid)
        elif any(is_herald(container) for container in spec["containers"]):
            check_herald_workload(where, objects, obj, uid)
    check_selectors(where, objects)
    check_dispatch_network_policy(where, objects, dev)
    kinds = {obj.get("kind") for obj in objects}
    for kind in ("Deployment", "StatefulSet", "PodDisruptionBudget", "NetworkPolicy"):
        if kind not in kinds:
            problem(where, f"renders no {kind}")
    for role in ("herald-ingest", "herald-dispatch", "herald-control"):
        if not find(objects, "Deployment", role):
            problem(where, f"renders no Deployment {role}")
    # Only `herald migrate` writes the streams and buckets; without it the roles wait and exit.
    if not find(objects, "Job", "herald-migrate"):
        problem(where, "renders no Job herald-migrate (the roles wait for `herald migrate`)")
    if not dev and not find(objects, "HorizontalPodAutoscaler", "herald-ingest"):
        problem(where, "renders no HorizontalPodAutoscaler for herald-ingest")


# ---------------------------------------------------------------------------------------------
# Prometheus rules and Grafana dashboards.


def selectors(node) -> list:
    """Returns every vector selector in a PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node]
    found = []
    for attribute in ("lhs", "rhs", "expr", "args", "vector_selector", "param"):
        value = getattr(node, attribute, None)
        if value is None:
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, (promql_parser.Expr, promql_parser.VectorSelector, promql_parser.MatrixSelector)):
                found.extend(selectors(child))
    return found


def grouping_labels(node) -> list[tuple[list[str], object]]:
    """Returns the `by (...)` labels of every aggregation, with the aggregated expression."""
    found = []
    if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
        if str(node.modifier.type).endswith("By"):
            found.append((list(node.modifier.labels), node.expr))
    for attribute in ("lhs", "rhs", "expr", "args", "param"):
        value = getattr(node, attribute, None)
        if value is None:
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, promql_parser.Expr):
                found.extend(grouping_labels(child))
    return found


def check_promql(where: str, expression: str) -> set[str]:
    # Grafana's variables, as Grafana would substitute them.
    expression = re.sub(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}", "5m", expression)
    expression = re.sub(r"\$\{?[a-z_]+\}?", ".*", expression)
    try:
        tree = promql_parser.parse(expression)
    except Exception as error:  # promql_parser raises its own exception types
        problem(where, f"invalid PromQL {expression!r}: {error}")
        return set()
    names = set()
    for selector in selectors(tree):
        name = selector.name
        if not name:
            problem(where, f"selector {selector} names no metric")
            continue
        names.add(name)
        labels = metric_labels(name)
        if labels is None:
            problem(where, f"{name} is not a metric Herald exports (crates/*/src/metrics.rs)")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name not in labels | TARGET_LABELS | {"__name__"}:
                problem(where, f"{name} has no label {matcher.name} (it has {sorted(labels)})")
    for labels, subtree in grouping_labels(tree):
        available = set(TARGET_LABELS)
        for selector in selectors(subtree):
            available |= metric_labels(selector.name or "") or set()
        for label in labels:
            if label not in available:
                problem(where, f"grouping by {label}, which no metric in {subtree} has")
    return names


def check_rules() -> set[str]:
    used: set[str] = set()
    paths = sorted(glob.glob(os.path.join(ROOT, "deploy", "prometheus", "*.yaml")))
    if not paths:
        problem("deploy/prometheus", "no rule files")
    for path in paths:
        where = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as file:
            document = yaml.safe_load(file)
        alerts = set()
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert") or rule.get("record")
                if not name:
                    problem(where, f"rule without alert or record: {rule}")
                    continue
                if rule.get("alert"):
                    alerts.add(name)
                    if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                        problem(f"{where}: {name}", "labels.severity must be critical, warning or info")
                    for annotation in ("summary", "description"):
                        if not rule.get("annotations", {}).get(annotation):
                            problem(f"{where}: {name}", f"annotations.{annotation} is missing")
                    if "for" in rule and parse_duration(rule["for"]) is None:
                        problem(f"{where}: {name}", f"for: {rule['for']!r} is not a duration")
                used |= check_promql(f"{where}: {name}", rule.get("expr", ""))
        print(f"ok: {where}: {len(alerts)} alerts")
    return used


def dashboard_targets(panels: list[dict]):
    for panel in panels:
        yield from ((panel.get("title", "?"), target) for target in panel.get("targets", []))
        yield from dashboard_targets(panel.get("panels", []))


def check_dashboards() -> set[str]:
    used: set[str] = set()
    paths = sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "*.json")))
    if not paths:
        problem("deploy/grafana", "no dashboards")
    for path in paths:
        where = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as file:
            try:
                dashboard = json.load(file)
            except json.JSONDecodeError as error:
                problem(where, f"invalid JSON: {error}")
                continue
        num_targets = 0
        for title, target in dashboard_targets(dashboard.get("panels", [])):
            num_targets += 1
            used |= check_promql(f"{where}: panel {title!r}", target.get("expr", ""))
        for variable in dashboard.get("templating", {}).get("list", []):
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if variable.get("type") == "query" and query:
                match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
                if not match or metric_labels(match.group(1)) is None:
                    problem(f"{where}: variable {variable.get('name')}", f"query {query!r} reads no Herald metric")
        print(f"ok: {where}: {num_targets} queries")
    return used


# ---------------------------------------------------------------------------------------------


def main() -> int:
    if not SETTINGS or not SUBCOMMANDS or not ADMIN_PATHS or not METRICS:
        print("check.py could not read Herald's settings, subcommands, admin paths or metrics", file=sys.stderr)
        return 1
    uid = dockerfile_user()
    renders = [(overlay, render(os.path.join(K8S, overlay))) for overlay in OVERLAYS]
    renders += [(f"overlays/production + {component}", render_with_component(component)) for component in COMPONENTS]
    for where, objects in renders:
        if not objects:
            problem(where, "rendered nothing")
            continue
        before = len(problems)
        check_rendered(where, objects, uid)
        if len(problems) == before:
            print(
                f"ok: {where}: {len(objects)} objects valid for Kubernetes {' and '.join(K8S_VERSIONS)}, "
                "consistent with Herald's settings and code"
            )
    used = check_rules() | check_dashboards()
    unused = sorted(name for name in METRICS if not any(u.startswith(name) for u in used))
    if unused:
        print(f"note: metrics neither alerted on nor graphed: {', '.join(unused)}")
    if problems:
        print(f"\n{len(problems)} problems:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
