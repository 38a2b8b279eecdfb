#!/usr/bin/env python3
"""Checks of the packaging files that need more than a schema; run by scripts/check-deploy.

    check_deploy.py static        cross-file consistency (compose, collector, Prometheus,
                                  Kubernetes manifests, Dockerfile, .env.example)
    check_deploy.py cited [FILE]  every repository file docs/deployment.md (or FILE) cites
                                  exists
    check_deploy.py build         runs the Dockerfile's builder stage directly: its COPY steps
                                  from the build context (honouring .dockerignore) and its RUN
                                  steps, in target/docker-build/ (no container engine here)
    check_deploy.py rules [FILE]  the PrometheusRule in FILE (default: the committed
                                  deploy/kubernetes/monitoring/prometheusrule.yaml; or
                                  kustomize output) has deploy/prometheus/rules.yml's groups;
                                  `rules --write` regenerates the committed one
    check_deploy.py unit-rules OUT [--without-for]
                                  rules.yml without annotations (for `promtool test rules`);
                                  --without-for also drops every `for:` (a mutation)
    check_deploy.py grafana [DASHBOARD]
                                  the dashboard JSON against the Grafana provisioning files
                                  and compose: JSON, unique panel ids, provisioned datasources
    check_deploy.py hpa FILE...   an HPA allows more than 4 replicas only where its Deployment
                                  requires the Redis URL (shared mode), in rendered manifests
    check_deploy.py smoke         starts the binaries that build produced the way the image,
                                  docker-compose.yml and the Kubernetes Deployment start them,
                                  on loopback ports, and runs their health checks and probes

Only the standard library and PyYAML. Every server it starts listens on 127.0.0.1.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "target" / "docker-build"
BUILDER_FS = WORK / "builder-fs"
RUNTIME_FS = WORK / "runtime-fs"
LOGS = WORK / "logs"
STAMP = WORK / "stamp"

failures: list[str] = []
warnings: list[str] = []


def fail(message: str) -> None:
    failures.append(message)
    print(f"  FAIL {message}")


def ok(message: str) -> None:
    print(f"  ok   {message}")


def warn(message: str) -> None:
    warnings.append(message)
    print(f"  WARN {message}")


def check(condition: bool, message: str) -> bool:
    (ok if condition else fail)(message)
    return condition


# --------------------------------------------------------------------------- Dockerfile


class Dockerfile:
    """The instructions of a Dockerfile, grouped by stage."""

    def __init__(self, path: Path):
        self.stages: list[dict] = []
        buf = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not buf and (not line or line.startswith("#")):
                continue
            if buf and (not line or line.startswith("#")):
                continue  # comments and blank lines inside a continuation are dropped
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            buf += line
            keyword, _, rest = buf.partition(" ")
            self._add(keyword.upper(), rest.strip())
            buf = ""
        if buf:
            raise SystemExit("Dockerfile ends inside a continuation")

    def _add(self, keyword: str, rest: str) -> None:
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            self.stages.append({"image": words[0], "name": name, "steps": []})
        elif not self.stages:
            if keyword != "ARG":
                raise SystemExit(f"{keyword} before FROM")
        else:
            self.stages[-1]["steps"].append((keyword, rest))

    def stage(self, name: str) -> dict:
        for stage in self.stages:
            if stage["name"] == name:
                return stage
        raise SystemExit(f"Dockerfile has no stage {name!r}")

    def final(self) -> dict:
        return self.stages[-1]

    @staticmethod
    def steps(stage: dict, keyword: str) -> list[str]:
        return [rest for kw, rest in stage["steps"] if kw == keyword]

    def image_config(self) -> dict:
        """ENV, USER, EXPOSE, HEALTHCHECK, ENTRYPOINT and CMD of the final stage."""
        stage = self.final()
        env: dict[str, str] = {}
        for rest in self.steps(stage, "ENV"):
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                env[key] = value
        config = {"env": env}
        for keyword in ("USER", "EXPOSE"):
            values = self.steps(stage, keyword)
            config[keyword.lower()] = values[-1] if values else None
        for keyword in ("ENTRYPOINT", "CMD"):
            values = self.steps(stage, keyword)
            config[keyword.lower()] = json.loads(values[-1]) if values else []
        health = self.steps(stage, "HEALTHCHECK")
        config["healthcheck"] = None
        if health:
            _, _, command = health[-1].partition("CMD ")
            config["healthcheck"] = json.loads(command)
        return config


def parse_copy(rest: str) -> tuple[dict, list[str], str]:
    words = shlex.split(rest)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    if len(words) < 2:
        raise SystemExit(f"COPY needs a source and a destination: {rest}")
    return flags, words[:-1], words[-1]


# ------------------------------------------------------------------------- .dockerignore


def dockerignore_patterns() -> list[tuple[bool, list[str]]]:
    path = ROOT / ".dockerignore"
    patterns = []
    if not path.exists():
        return patterns
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        patterns.append((negate, [p for p in line.split("/") if p not in ("", ".")]))
    return patterns


def _match_segments(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match_segments(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match_segments(
        pattern[1:], parts[1:]
    )


def ignored(relpath: str, patterns) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a directory
    matches everything under it."""
    parts = relpath.split("/")
    result = False
    for negate, pattern in patterns:
        if any(_match_segments(pattern, parts[:i]) for i in range(1, len(parts) + 1)):
            result = not negate
    return result


def context_files(source: str, patterns) -> list[tuple[Path, str]]:
    """(file, path relative to the source) for a COPY source in the build context."""
    src = (ROOT / source).resolve()
    if ROOT.resolve() not in src.parents and src != ROOT.resolve():
        raise SystemExit(f"COPY source {source} is outside the build context")
    out = []
    if src.is_file():
        if not ignored(src.relative_to(ROOT).as_posix(), patterns):
            out.append((src, src.name))
    elif src.is_dir():
        for path in sorted(src.rglob("*")):
            if path.is_file() and not ignored(path.relative_to(ROOT).as_posix(), patterns):
                out.append((path, path.relative_to(src).as_posix()))
    return out


# ------------------------------------------------------------------------------- build


ABSOLUTE_PATH = re.compile(r"(^|[\s=:'\"<>|;&(])/(?!dev/null\b)")


def quick_build_env() -> dict[str, str]:
    """Cargo settings that make the builder stage's release build cheaper, from
    CHECK_DEPLOY_BUILD_OPT_LEVEL (CI sets 0): the same steps, manifests, features and
    binaries, compiled without optimisation and debug info. A real image build ignores it."""
    level = os.environ.get("CHECK_DEPLOY_BUILD_OPT_LEVEL", "").strip()
    if not level:
        return {}
    if level not in ("0", "1", "2", "3", "s", "z"):
        raise SystemExit(f"CHECK_DEPLOY_BUILD_OPT_LEVEL={level!r}: one of 0, 1, 2, 3, s, z")
    return {"CARGO_PROFILE_RELEASE_OPT_LEVEL": level, "CARGO_PROFILE_RELEASE_DEBUG": "false"}


def build() -> None:
    dockerfile = Dockerfile(ROOT / "Dockerfile")
    patterns = dockerignore_patterns()
    builder = dockerfile.stage("builder")
    expected = "rust:1.95-bookworm"
    check(builder["image"] == expected, f"builder image is {expected} (this machine's toolchain)")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    check(rustc.startswith("rustc 1.95"), f"local toolchain matches the builder image: {rustc}")

    # The stamp: every input of the builder stage.
    digest = hashlib.sha256(rustc.encode())
    for name in ("Dockerfile", ".dockerignore"):
        digest.update((ROOT / name).read_bytes())
    for rest in Dockerfile.steps(builder, "COPY"):
        _, sources, _ = parse_copy(rest)
        for source in sources:
            for path, rel in context_files(source, patterns):
                digest.update(f"{source}/{rel}".encode())
                digest.update(path.read_bytes())
    quick = quick_build_env()
    digest.update(repr(sorted(quick.items())).encode())
    stamp = digest.hexdigest()
    outputs_present = all(
        (BUILDER_FS / src.lstrip("/")).is_file()
        for rest in Dockerfile.steps(dockerfile.final(), "COPY")
        for src in parse_copy(rest)[1]
    )
    if STAMP.exists() and STAMP.read_text() == stamp and outputs_present:
        ok("builder stage unchanged since its last successful run: not run again")
        install_runtime(dockerfile)
        return

    # A fresh builder filesystem, except the build's target/ (a stand-in for Docker's
    # layer cache: the dependency layer's artifacts survive, as they would in Docker).
    if BUILDER_FS.exists():
        keep = {p for p in BUILDER_FS.glob("*/target")}
        for top in BUILDER_FS.iterdir():
            if top.is_dir():
                for child in top.iterdir():
                    if child not in keep:
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
            else:
                top.unlink()
    BUILDER_FS.mkdir(parents=True, exist_ok=True)

    # The host's environment less what would make cargo build differently from the image
    # (a shared target dir, flags, wrappers, a toolchain override).
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("CARGO_") and k != "CARGO_HOME")
        and k not in ("RUSTFLAGS", "RUSTDOCFLAGS", "RUSTC", "RUSTC_WRAPPER", "RUSTUP_TOOLCHAIN")
    }
    if quick:
        print(f"   building without optimisation ({', '.join(f'{k}={v}' for k, v in quick.items())}): CHECK_DEPLOY_BUILD_OPT_LEVEL is set")
    env.update(quick)
    workdir = BUILDER_FS
    for keyword, rest in builder["steps"]:
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            env[name] = default
        elif keyword == "ENV":
            for word in shlex.split(rest):
                key, _, value = word.partition("=")
                env[key] = value
        elif keyword == "WORKDIR":
            workdir = BUILDER_FS / rest.lstrip("/") if rest.startswith("/") else workdir / rest
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            flags, sources, dest = parse_copy(rest)
            if flags:
                raise SystemExit(f"builder COPY flags are not emulated: {rest}")
            target = BUILDER_FS / dest.lstrip("/") if dest.startswith("/") else workdir / dest
            into_dir = dest.endswith("/") or len(sources) > 1
            for source in sources:
                files = context_files(source, patterns)
                if not files:
                    fail(f"COPY {source}: nothing in the build context (missing or in .dockerignore)")
                    return
                single_file = (ROOT / source).is_file()
                for path, rel in files:
                    if single_file:
                        out = target / rel if into_dir else target
                    else:
                        out = target / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, out)
            ok(f"COPY {rest}")
        elif keyword == "RUN":
            if ABSOLUTE_PATH.search(rest):
                fail(f"RUN uses an absolute path (not emulated here; keep it relative to WORKDIR): {rest}")
                return
            print(f"  ..   RUN {rest}", flush=True)
            started = time.monotonic()
            result = subprocess.run(["nice", "-n", "10", "sh", "-ec", rest], cwd=workdir, env=env)
            if not check(result.returncode == 0, f"RUN succeeded in {time.monotonic() - started:.0f} s"):
                return
    if install_runtime(dockerfile):
        STAMP.write_text(stamp)


def install_runtime(dockerfile: Dockerfile) -> bool:
    """The final stage's COPY --from=builder steps, into target/docker-build/runtime-fs."""
    good = True
    if RUNTIME_FS.exists():
        shutil.rmtree(RUNTIME_FS)
    for rest in Dockerfile.steps(dockerfile.final(), "COPY"):
        flags, sources, dest = parse_copy(rest)
        if flags.get("from") != "builder":
            fail(f"runtime COPY not from the builder stage: {rest}")
            good = False
            continue
        target = RUNTIME_FS / dest.lstrip("/")
        for source in sources:
            path = BUILDER_FS / source.lstrip("/")
            # A directory source copies its contents, as Docker's COPY does.
            files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
            if not files or not all(f.is_file() for f in files):
                fail(f"COPY --from=builder {source}: the builder did not produce it")
                good = False
                continue
            for file in files:
                out = target / file.name if dest.endswith("/") or path.is_dir() else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, out)
                ok(f"runtime image gets {dest.rstrip('/')}/{file.name} ({out.stat().st_size // 1_000_000} MB)")
    return good


# ------------------------------------------------------------------------------ compose


INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value, env: dict[str, str], missing: set[str]):
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3)
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op and op.endswith("-"):
            return arg if unset else current
        if unset:
            missing.add(name)
            return ""
        return current

    return INTERPOLATION.sub(replace, value)


def compose_model() -> tuple[dict, dict[str, str]]:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = read_env_file(ROOT / ".env.example")
    missing: set[str] = set()
    model = interpolate(raw, env, missing)
    for name in sorted(missing):
        fail(f"docker-compose.yml needs ${{{name}}}, which .env.example does not set")
    return model, env


def env_list(environment) -> dict[str, str]:
    if isinstance(environment, dict):
        return {k: "" if v is None else str(v) for k, v in environment.items()}
    return dict(item.partition("=")[::2] for item in environment or [])


def host_port(url_or_addr: str) -> tuple[str, int]:
    text = url_or_addr.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = text.rpartition(":")
    return host, int(port)


DEFAULT_SHUTDOWN_GRACE_SECS = 20  # server.shutdown_grace_secs when no file sets it


def compose_proxy_settings(service: dict) -> dict:
    """The settings file a compose service of the proxy mounts for --config ({} if none)."""
    command = service.get("command") or []
    if "--config" not in command:
        return {}
    path = command[command.index("--config") + 1]
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if target == path:
            return tomllib.loads((ROOT / source).read_text())
    return {}


def proxy_ports(service: dict) -> tuple[int, int]:
    """(API port, port serving /readyz and /metrics) of a compose service of the proxy."""
    command = service.get("command") or []
    server = compose_proxy_settings(service).get("server", {})
    listen = command[command.index("--listen") + 1] if "--listen" in command else server.get("listen", "127.0.0.1:8080")
    api = host_port(listen)[1]
    ops = server.get("ops_listen")
    return api, host_port(ops)[1] if ops else api


def seconds(duration: str) -> float:
    """A compose duration (`20s`, `1m30s`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise SystemExit(f"not a compose duration: {duration}")
    return sum(float(n) * units[u] for n, u in parts)


def proxy_replicas(services: dict) -> list[str]:
    """The compose services that run the proxy in real mode (the image's entrypoint, not
    --demo), in file order."""
    return [
        name
        for name, service in services.items()
        if service.get("image", "").startswith("genesys-proxy") and "entrypoint" not in service and "--demo" not in (service.get("command") or [])
    ]


NGINX_CONFIG = "/etc/nginx/nginx.conf"


def load_balancer(services: dict) -> tuple[str, dict, str] | None:
    """(name, service, nginx.conf text) of the compose service that mounts an nginx.conf."""
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            if target == NGINX_CONFIG:
                return name, service, (ROOT / source).read_text()
    return None


def nginx_blocks(text: str, keyword: str) -> list[str]:
    """The bodies of the nginx blocks `keyword ... { ... }` (nested braces counted)."""
    text = re.sub(r"#[^\n]*", "", text)
    bodies = []
    for match in re.finditer(rf"\b{keyword}\b[^{{;]*\{{", text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                bodies.append(text[start:i])
                break
    return bodies


def nginx_upstream_servers(text: str) -> list[str]:
    return [m for body in nginx_blocks(text, "upstream") for m in re.findall(r"^\s*server\s+([^\s;]+)", body, re.M)]


def nginx_listen_ports(text: str) -> list[int]:
    return [int(m.rpartition(":")[2]) for body in nginx_blocks(text, "server") for m in re.findall(r"^\s*listen\s+([^\s;]+)", body, re.M)]


def compose_shared_mode(services: dict, replicas: list[str], api_port: int) -> None:
    """Shared mode in compose: the replicas on one Redis, behind a load balancer that
    spreads over all of them; Prometheus scrapes each."""
    urls = {env_list(services[name]["environment"]).get("GENESYS_PROXY_REDIS__URL") for name in replicas}
    check(len(urls) == 1 and None not in urls, f"every replica sets the same GENESYS_PROXY_REDIS__URL ({sorted(map(str, urls))})")
    url = next(iter(urls))
    if url:
        redis_host, redis_port = host_port(url)
        check(url.startswith("redis://") and redis_host in services, f"the Redis URL's host {redis_host} is a compose service")
        redis = services.get(redis_host, {})
        test = (redis.get("healthcheck") or {}).get("test", [])
        check(test[1:3] == ["redis-cli", "ping"] and redis_port == 6379, f"{redis_host}: health check `redis-cli ping`, on Redis' port 6379")
        command = redis.get("command") or []
        check(
            "--save" in command and command[command.index("--save") + 1] == "" and command[-2:] == ["--appendonly", "no"],
            f"{redis_host}: no persistence (--save '' --appendonly no)",
        )
        for name in replicas:
            condition = (services[name].get("depends_on") or {}).get(redis_host, {}).get("condition")
            check(condition == "service_healthy", f"{name} waits for {redis_host} to be healthy")

    found = load_balancer(services)
    if not check(found is not None, f"a load balancer service mounts an nginx.conf at {NGINX_CONFIG}"):
        return
    name, lb, conf = found
    upstream = nginx_upstream_servers(conf)
    wanted = [f"{replica}:{api_port}" for replica in replicas]
    check(sorted(upstream) == sorted(wanted), f"{name}'s upstream servers {upstream} are the replicas' API ports {wanted}")
    listens = nginx_listen_ports(conf)
    lb_ports = [int(p.rsplit(":", 1)[1]) for p in lb.get("ports") or []]
    check(bool(lb_ports) and set(lb_ports) <= set(listens), f"{name} publishes ports nginx listens on ({lb_ports} of {listens})")
    check(all(p.startswith("127.0.0.1:") for p in lb.get("ports") or []), f"{name} is published on 127.0.0.1 only")
    health_port = host_port(lb["healthcheck"]["test"][-1])[1]
    check(health_port in listens and health_port not in lb_ports, f"{name}'s health check asks nginx on {health_port}, a port not published")
    for replica in replicas:
        condition = (lb.get("depends_on") or {}).get(replica, {}).get("condition")
        check(condition == "service_healthy", f"{name} waits for {replica} to be healthy")


# ------------------------------------------------------------------------------- static


def static() -> None:
    dockerfile = Dockerfile(ROOT / "Dockerfile")
    image = dockerfile.image_config()

    print("Dockerfile")
    check(len(dockerfile.stages) >= 2, "multi-stage")
    builder_runs = " ".join(Dockerfile.steps(dockerfile.stage("builder"), "RUN"))
    builds = re.findall(r"cargo build[^&;|]*", builder_runs)
    check(
        len(builds) == 2 and len({b.strip() for b in builds}) == 1,
        f"the dependency layer and the final build run the same cargo command: {builds[0].strip() if builds else None}",
    )
    copies = Dockerfile.steps(dockerfile.stage("builder"), "COPY")
    manifest_copies = [c for c in copies if "Cargo." in c]
    first_source_copy = next((i for i, c in enumerate(copies) if "Cargo." not in c), len(copies))
    check(
        all(copies.index(c) < first_source_copy for c in manifest_copies),
        "manifests and Cargo.lock are copied before any source (cached dependency layer)",
    )
    members = tomllib.loads((ROOT / "Cargo.toml").read_text()).get("workspace", {}).get("members", [])
    for member in members:
        check(any(f"{member}/Cargo.toml" in c for c in manifest_copies), f"dependency layer copies {member}/Cargo.toml")
    user = (image["user"] or "").split(":")[0]
    check(user.isdigit() and int(user) != 0, f"runtime USER is a numeric non-root uid ({image['user']})")
    check(image["expose"] == "8080", "EXPOSE 8080")
    check("GENESYS_PROXY_SERVER__LISTEN" not in image["env"], "no ENV sets the listen address (it would override a mounted file's server.listen)")
    check(image["cmd"][-2:] == ["--listen", "0.0.0.0:8080"], "the default CMD (demo mode) listens on 0.0.0.0:8080")
    check(bool(image["healthcheck"]) and image["healthcheck"][1] == "healthcheck", "HEALTHCHECK uses `genesys-proxy healthcheck` (exec form, no curl)")
    runtime_sources = [s for c in Dockerfile.steps(dockerfile.final(), "COPY") for s in parse_copy(c)[1]]
    for binary in ("genesys-proxy", "genesys-sim"):
        # Named in the runtime COPY, or put by the builder into the directory it copies
        # (genesys-sim only with the default DEMO=true).
        check(
            any(s.endswith("/" + binary) for s in runtime_sources)
            or (any(s.rstrip("/").endswith("/out") for s in runtime_sources) and f"target/release/{binary} " in builder_runs + " "),
            f"runtime image gets {binary}",
        )

    print("docker-compose.yml")
    compose, env_example = compose_model()
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            check(dep in services, f"{name} depends on an existing service {dep}")
            if spec.get("condition") == "service_healthy":
                check("healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, and {dep} has a healthcheck")
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                check((ROOT / source).exists(), f"{name} mounts {source}, which exists")
        environment = env_list(service.get("environment"))
        for key in environment:
            if "SECRET" in key or "PASSWORD" in key:
                literal = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]["environment"][key]
                check(str(literal).startswith("${"), f"{name}.{key} comes from the environment, not the file")
    for name, service in services.items():
        if service.get("image", "").startswith("genesys-proxy") and "entrypoint" not in service:
            grace = compose_proxy_settings(service).get("server", {}).get("shutdown_grace_secs", DEFAULT_SHUTDOWN_GRACE_SECS)
            stop = seconds(service.get("stop_grace_period", "10s"))
            check(stop > grace, f"{name}: stop_grace_period {stop:.0f} s > its shutdown grace {grace} s (the drain ends before SIGKILL)")
    for name, service in services.items():
        if "build" not in service:
            tag = service.get("image", "").rpartition(":")[2]
            check(bool(re.fullmatch(r"v?\d+(\.\d+)+(-[\w.]+)?", tag)), f"{name}: image {service.get('image')} is pinned to a version")
    replicas = proxy_replicas(services)
    check(len(replicas) >= 2, f"the proxy runs as {len(replicas)} replicas ({', '.join(replicas)}): two or more")
    if not replicas:
        return
    proxy = services[replicas[0]]
    shared_keys = ("command", "environment", "volumes", "healthcheck", "depends_on", "stop_grace_period", "read_only", "cap_drop")
    for name in replicas[1:]:
        differ = [k for k in shared_keys if services[name].get(k) != proxy.get(k)]
        check(not differ, f"{name} is configured as {replicas[0]} (differs in: {differ or 'nothing'})")
    published = [p for name in replicas for p in services[name].get("ports") or []]
    host_ports = [p.rsplit(":", 2)[-2] for p in published]
    check(len(set(host_ports)) == len(host_ports), f"the replicas publish distinct host ports ({', '.join(host_ports)})")
    check(all(p.startswith("127.0.0.1:") for p in published), "the replicas' ports are published on 127.0.0.1 only")
    proxy_api_port, proxy_ops_port = proxy_ports(proxy)
    probe_host, probe_port = host_port(proxy["healthcheck"]["test"][-1])
    check(probe_port == proxy_ops_port, f"the proxy's compose health check asks its operations port {proxy_ops_port}")
    proxy_env = env_list(proxy["environment"])
    otlp_host, otlp_port = host_port(proxy_env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    check(otlp_host in services, f"the proxy's OTLP endpoint host {otlp_host} is a service")
    collector = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())
    http_endpoint = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    check(host_port(http_endpoint)[1] == otlp_port, f"the collector receives OTLP/HTTP on {otlp_port}")
    sim_host, _ = host_port(proxy_env["GENESYS_API_URL"])
    check(sim_host in services, f"the proxy's GENESYS_API_URL host {sim_host} is a service")
    compose_shared_mode(services, replicas, proxy_api_port)
    check(read_env_file(ROOT / ".env.example").keys() >= {"GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET"}, ".env.example sets the credentials")

    print("deploy/otel-collector.yaml (structure; no collector binary installs from the registries)")
    known = {
        "receivers": {"otlp"},
        "processors": {"batch", "memory_limiter"},
        "exporters": {"otlp", "otlphttp", "debug"},
        "extensions": {"health_check"},
    }
    for kind, types in known.items():
        for component in collector.get(kind) or {}:
            check(component.split("/")[0] in types, f"{kind[:-1]} {component} is a component of the contrib distribution")
    service = collector["service"]
    used = set()
    for pipeline, spec in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in spec.get(kind, []):
                used.add((kind, component))
                check(component in (collector.get(kind) or {}), f"pipeline {pipeline} uses a defined {kind[:-1]} {component}")
        check(bool(spec.get("receivers")) and bool(spec.get("exporters")), f"pipeline {pipeline} has receivers and exporters")
    for extension in service.get("extensions", []):
        check(extension in (collector.get("extensions") or {}), f"extension {extension} is defined")
    for kind in ("receivers", "processors", "exporters"):
        for component in collector.get(kind) or {}:
            check((kind, component) in used, f"{kind[:-1]} {component} is used by a pipeline")
    for name, exporter in collector["exporters"].items():
        if "endpoint" in exporter:
            host, _ = host_port(exporter["endpoint"])
            check(host in services, f"exporter {name} sends to compose service {host}")

    print("deploy/prometheus.yml (promtool checks syntax; here: its targets)")
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    for job in prometheus["scrape_configs"]:
        for group in job.get("static_configs", []):
            for target in group["targets"]:
                host, port = host_port(target)
                if host not in ("127.0.0.1", "localhost"):
                    check(host in services, f"job {job['job_name']} scrapes compose service {host}")
                    if job["job_name"].startswith("genesys-proxy") and host in services:
                        metrics_port = proxy_ports(services[host])[1]
                        check(port == metrics_port and job.get("metrics_path", "/metrics") == "/metrics", f"{target}/metrics is the proxy's metrics endpoint (port {metrics_port})")

    proxy_job = next((job for job in prometheus["scrape_configs"] if job["job_name"] == ALERT_JOB), {})
    scraped = {host_port(t)[0] for group in proxy_job.get("static_configs", []) for t in group["targets"]}
    check(scraped == set(replicas), f"job {ALERT_JOB} scrapes every replica, one target each ({sorted(scraped)})")

    print("deploy/compose/proxy.toml")
    compose_toml = tomllib.loads((ROOT / "deploy" / "compose" / "proxy.toml").read_text())
    demo_key = env_example.get("DEMO_API_KEY", "")
    hashes = [c["key_sha256"] for c in compose_toml.get("clients", [])]
    check(hashlib.sha256(demo_key.encode()).hexdigest() in hashes, ".env.example's DEMO_API_KEY is a configured client (by its SHA-256)")

    print("deploy/kubernetes")
    k8s_dir = ROOT / "deploy" / "kubernetes"
    docs: list[dict] = []
    for path in sorted(k8s_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["__file"] = path.name
                docs.append(doc)
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    kustomization = by_kind["Kustomization"][0]
    for resource in kustomization["resources"]:
        check((k8s_dir / resource).is_file(), f"kustomization resource {resource} exists")
    listed = set(kustomization["resources"])
    for path in sorted(k8s_dir.glob("*.yaml")):
        if path.name not in listed and path.name != "kustomization.yaml":
            check(path.name.endswith(".example.yaml"), f"{path.name} is either listed in kustomization.yaml or a template (*.example.yaml)")
    deployment = by_kind["Deployment"][0]
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    check(selector.items() <= labels.items(), "Deployment selector matches its pod labels")
    for kind in ("Service", "PodDisruptionBudget"):
        for doc in by_kind.get(kind, []):
            if not is_proxy_object(doc, labels):
                continue  # e.g. redis/'s Service: checked with its component below
            sel = doc["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            check(sel.items() <= labels.items(), f"{kind} {doc['metadata']['name']} selects the pods")
    hpa = by_kind["HorizontalPodAutoscaler"][0]
    check(hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"], "HPA targets the Deployment")
    check("replicas" not in deployment["spec"], "Deployment leaves replicas to the HPA")
    hpa_within_mode(docs)
    check(hpa["spec"]["maxReplicas"] <= MAX_REPLICAS_ALONE, f"the base HPA stays at {hpa['spec']['maxReplicas']} replicas (alone, each is another token and budget; shared/ raises it)")
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports.get("http") == int(image["expose"]), "containerPort http is the image's EXPOSE")
    check(pod["securityContext"]["runAsUser"] == int(user), "runAsUser is the image's USER")
    security = container["securityContext"]
    check(security.get("readOnlyRootFilesystem") is True and security.get("allowPrivilegeEscalation") is False, "read-only root filesystem, no privilege escalation")
    check(all(k in container["resources"].get("requests", {}) for k in ("cpu", "memory")), "resource requests set")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "liveness probe on /healthz")
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness probe on /readyz")
    config_maps = {d["metadata"]["name"]: d for d in by_kind["ConfigMap"]}
    proxy_toml = tomllib.loads(config_maps["genesys-proxy-config"]["data"]["proxy.toml"])
    ops_listen = proxy_toml.get("server", {}).get("ops_listen")
    if check(bool(ops_listen), "the ConfigMap's proxy.toml sets server.ops_listen"):
        ops_port = host_port(ops_listen)[1]
        check(ports.get("ops") == ops_port, f"containerPort ops is server.ops_listen's port {ops_port}")
        for kind in ("livenessProbe", "readinessProbe"):
            check(container[kind]["httpGet"]["port"] == "ops", f"{kind} asks the operations port")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        check(annotations.get("prometheus.io/port") == str(ops_port), f"prometheus.io/port is the operations port {ops_port}")
        for service in by_kind.get("Service", []):
            targets = {p.get("targetPort") for p in service["spec"]["ports"]}
            check("ops" not in targets and ops_port not in targets, f"Service {service['metadata']['name']} does not expose the operations port")
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            check(source["configMapRef"]["name"] in config_maps, f"envFrom ConfigMap {source['configMapRef']['name']} is defined")
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            check(name in secrets, f"envFrom Secret {name} has a template")
            if name in secrets:
                keys = set(secrets[name].get("stringData", {}))
                check(keys == {"GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET"}, "the Secret template holds the OAuth client id and secret")
                check(all("REPLACE" in v for v in secrets[name]["stringData"].values()), "the Secret template holds placeholders only")
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            check(volume["configMap"]["name"] in config_maps, f"volume {volume['name']} ConfigMap is defined")
    args = container.get("args", [])
    config_path = args[args.index("--config") + 1] if "--config" in args else None
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    config_key = Path(config_path).name if config_path else None
    config_map = config_maps[next(v for v in pod["volumes"] if v["name"] == "config")["configMap"]["name"]]
    check(config_path == f"{mount['mountPath']}/{config_key}" and config_key in config_map["data"], f"--config {config_path} is a key of the mounted ConfigMap")
    toml_settings = tomllib.loads(config_map["data"][config_key])
    grace = toml_settings.get("server", {}).get("shutdown_grace_secs", 20)
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    check(pod["terminationGracePeriodSeconds"] > grace + pre_stop, f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > shutdown grace {grace} + preStop {pre_stop}")
    cache = toml_settings.get("cache", {})
    caches = cache.get("max_bytes", 256 * 2**20) + cache.get("report_max_bytes", 64 * 2**20)
    limit = container["resources"]["limits"]["memory"]
    limit_bytes = int(limit[:-2]) * {"Mi": 2**20, "Gi": 2**30}[limit[-2:]]
    check(limit_bytes >= caches + 256 * 2**20, f"memory limit {limit} is 256 MiB or more above the caches' {caches / 2**20:.0f} MiB (cache.max_bytes + cache.report_max_bytes)")

    monitoring_static(services, labels, container)
    kubernetes_shared_static(deployment, labels, container)


# ------------------------------------------------------------------- kubernetes, shared


KUBERNETES = ROOT / "deploy" / "kubernetes"
# Alone (no Redis), each replica is another Genesys token and budget: few replicas.
MAX_REPLICAS_ALONE = 4
REDIS_URL_ENV = "GENESYS_PROXY_REDIS__URL"


def is_proxy_object(doc: dict, pod_labels: dict) -> bool:
    """An object of the proxy's own (not of redis/ or another component): named by the
    proxy's app.kubernetes.io/name."""
    name_label = "app.kubernetes.io/name"
    return doc.get("metadata", {}).get("labels", {}).get(name_label) == pod_labels.get(name_label)


def redis_url_required(deployment: dict) -> str | None:
    """How the Deployment's first container gets GENESYS_PROXY_REDIS__URL when every pod
    must have it (a value, or a required Secret or ConfigMap key); None when a pod may start
    without it."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for entry in container.get("env") or []:
        if entry["name"] != REDIS_URL_ENV:
            continue
        if entry.get("value"):
            return "a value"
        source = entry.get("valueFrom", {})
        for kind in ("secretKeyRef", "configMapKeyRef"):
            if kind in source and not source[kind].get("optional", False):
                return f"{kind} {source[kind]['name']}/{source[kind]['key']} (required)"
    return None


def hpa_within_mode(docs: list[dict]) -> None:
    """An HPA may allow more than MAX_REPLICAS_ALONE replicas only where its Deployment's
    pods cannot start outside shared mode (their Redis URL is required)."""
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    hpas = [d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"]
    check(bool(hpas), f"{len(hpas)} HorizontalPodAutoscaler(s)")
    for hpa in hpas:
        name, most = hpa["metadata"]["name"], hpa["spec"]["maxReplicas"]
        target = deployments.get(hpa["spec"]["scaleTargetRef"]["name"])
        if not check(target is not None, f"HPA {name} targets a Deployment of the same files"):
            continue
        source = redis_url_required(target)
        if most <= MAX_REPLICAS_ALONE:
            ok(f"HPA {name}: at most {most} replicas (allowed alone too)")
        else:
            check(source is not None, f"HPA {name}: {most} replicas only in shared mode: {REDIS_URL_ENV} is {source or 'OPTIONAL OR MISSING: pods may run alone'}")


def hpa(*files: str) -> None:
    """`hpa FILE...`: the HPA rule on rendered manifests (kustomize output)."""
    docs = [d for f in files for d in yaml.safe_load_all(Path(f).read_text()) if d]
    hpa_within_mode(docs)


def component(path: Path) -> dict:
    doc = yaml.safe_load((path / "kustomization.yaml").read_text())
    check(doc.get("kind") == "Component", f"{path.relative_to(KUBERNETES)}/ is a kustomize Component")
    listed = {*(doc.get("resources") or []), *(p["path"] for p in doc.get("patches") or [])}
    for file in sorted(path.glob("*.yaml")):
        if file.name != "kustomization.yaml":
            check(file.name in listed, f"{path.name}/{file.name} is listed in its kustomization")
    for name in listed:
        check((path / name).is_file(), f"{path.name}/{name} exists")
    return doc


def kubernetes_shared_static(deployment: dict, pod_labels: dict, container: dict) -> None:
    """The base's optional Redis URL, the shared/ component (Redis URL required, HPA
    raised) and the redis/ component (a single-node Redis for trying)."""
    print("deploy/kubernetes: shared mode (the base, shared/, redis/)")
    env = {e["name"]: e for e in container.get("env") or []}
    ref = env.get(REDIS_URL_ENV, {}).get("valueFrom", {}).get("secretKeyRef")
    check(bool(ref) and ref.get("optional") is True, f"the base takes {REDIS_URL_ENV} from an optional Secret key (pods run alone without it)")
    check(redis_url_required(deployment) is None, "so the base alone never requires Redis")

    shared = KUBERNETES / "shared"
    component(shared)
    patches = [yaml.safe_load((shared / p["path"]).read_text()) for p in yaml.safe_load((shared / "kustomization.yaml").read_text())["patches"]]
    patched = next((p for p in patches if p["kind"] == "Deployment"), None)
    raised = next((p for p in patches if p["kind"] == "HorizontalPodAutoscaler"), None)
    if check(patched is not None and raised is not None, "shared/ patches the Deployment and the HPA"):
        check(patched["metadata"]["name"] == deployment["metadata"]["name"], "shared/ patches the proxy's Deployment")
        patched_env = {e["name"]: e for e in patched["spec"]["template"]["spec"]["containers"][0].get("env", [])}
        patched_ref = patched_env.get(REDIS_URL_ENV, {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(
            patched_ref.get("optional") is False and (patched_ref.get("name"), patched_ref.get("key")) == (ref.get("name"), ref.get("key")),
            f"shared/ makes the base's {REDIS_URL_ENV} ({ref.get('name')}/{ref.get('key')}) required",
        )
        check(raised["spec"]["maxReplicas"] > MAX_REPLICAS_ALONE, f"shared/ raises the HPA's maxReplicas to {raised['spec']['maxReplicas']}")

    redis_dir = KUBERNETES / "redis"
    component(redis_dir)
    docs = [d for f in sorted(redis_dir.glob("*.yaml")) if f.name != "kustomization.yaml" for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    if not check({"Deployment", "Service", "Secret"} <= kinds.keys(), f"redis/ holds a Deployment, a Service and a Secret ({sorted(kinds)})"):
        return
    redis_deployment, service, secret = kinds["Deployment"], kinds["Service"], kinds["Secret"]
    redis_labels = redis_deployment["spec"]["template"]["metadata"]["labels"]
    proxy_selector = deployment["spec"]["selector"]["matchLabels"]
    check(not is_proxy_object(redis_deployment, pod_labels), "redis/'s objects are not named as the proxy's")
    check(not proxy_selector.items() <= redis_labels.items(), "the proxy's selector (Deployment, Service, PDB, PodMonitor) does not select the Redis pods")
    check(redis_deployment["spec"].get("replicas") == 1, "redis/ runs one Redis pod")
    check(service["spec"]["selector"].items() <= redis_labels.items(), f"Service {service['metadata']['name']} selects the Redis pods")
    check(not service["spec"]["selector"].items() <= pod_labels.items(), f"Service {service['metadata']['name']} does not select the proxy's pods")
    redis_container = redis_deployment["spec"]["template"]["spec"]["containers"][0]
    args = redis_container.get("args", [])
    check("--save" in args and args[args.index("--save") + 1] == "" and args[-2:] == ["--appendonly", "no"], "redis/ keeps nothing (--save '' --appendonly no)")
    check(redis_container["readinessProbe"].get("exec", {}).get("command") == ["redis-cli", "ping"], "redis/ is ready on `redis-cli ping`")
    tag = redis_container["image"].rpartition(":")[2]
    check(bool(re.fullmatch(r"\d+(\.\d+)+(-[\w.]+)?", tag)), f"redis/'s image {redis_container['image']} is pinned")
    compose_image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"].get("redis", {}).get("image")
    check(redis_container["image"] == compose_image, f"redis/ and compose run the same Redis image ({compose_image})")
    check(secret["metadata"]["name"] == ref.get("name") and ref.get("key") in secret.get("stringData", {}), f"redis/'s Secret is the {ref.get('name')}/{ref.get('key')} the Deployment reads")
    url = secret.get("stringData", {}).get(ref.get("key"), "")
    host, port = host_port(url)
    service_ports = {p["port"] for p in service["spec"]["ports"]}
    check(url.startswith("redis://") and host == service["metadata"]["name"] and port in service_ports, f"its URL {url} is the Service {service['metadata']['name']} on port {port}")


# --------------------------------------------------------------------------- monitoring


RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TESTS = ROOT / "deploy" / "prometheus" / "rules.test.yml"
MONITORING = ROOT / "deploy" / "kubernetes" / "monitoring"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "genesys-proxy.json"
OPERATIONS = ROOT / "docs" / "operations.md"
# The scrape job the alerts select (compose's job; the PodMonitor's jobLabel value).
ALERT_JOB = "genesys-proxy"
SEVERITIES = {"critical", "warning"}
PANEL_TYPES = {"row", "text", "timeseries", "stat", "gauge", "bargauge", "table"}


class _RuleDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, long ones folded, sequences indented under
    their key: readable, and as yamllint wants it."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else (">" if len(value) > 100 else None)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RuleDumper.add_representer(str, _represent_str)


def prometheus_rule_text() -> str:
    """deploy/kubernetes/monitoring/prometheusrule.yaml, generated from rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "genesys-proxy", "labels": {"app.kubernetes.io/name": "genesys-proxy"}},
        "spec": {"groups": groups},
    }
    header = (
        "# GENERATED from deploy/prometheus/rules.yml by `python3 scripts/check_deploy.py rules --write`:\n"
        "# edit that file and regenerate; scripts/check-deploy fails when the two differ.\n"
        "# The same alerts for the Prometheus Operator (docs/operations.md).\n"
    )
    return header + yaml.dump(doc, Dumper=_RuleDumper, sort_keys=False, width=110, allow_unicode=True)


def rules(*args: str) -> None:
    """`rules [FILE]`: the PrometheusRule in FILE (the committed one, or kustomize output)
    holds exactly the groups of deploy/prometheus/rules.yml. `rules --write` regenerates it."""
    if args == ("--write",):
        PROMETHEUS_RULE.write_text(prometheus_rule_text())
        ok(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")
        return
    path = Path(args[0]) if args else PROMETHEUS_RULE
    groups = yaml.safe_load(RULES.read_text())["groups"]
    found = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "PrometheusRule"]
    if not check(len(found) == 1, f"{path.name} holds one PrometheusRule"):
        return
    doc = found[0]
    check(doc.get("apiVersion") == "monitoring.coreos.com/v1", "apiVersion monitoring.coreos.com/v1")
    check(set(doc) == {"apiVersion", "kind", "metadata", "spec"} and set(doc["spec"]) == {"groups"}, "only apiVersion, kind, metadata and spec.groups")
    check(bool(doc.get("metadata", {}).get("name")), "metadata.name is set")
    check(doc["spec"]["groups"] == groups, f"spec.groups are deploy/prometheus/rules.yml's groups (else: {sys.argv[0]} rules --write)")


def unit_rules(out: str, *flags: str) -> None:
    """`unit-rules OUT [--without-for]`: rules.yml without its annotations, for promtool's
    unit tests (which compare annotations whole); --without-for also drops every `for:`, a
    mutation the tests must catch."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
            if "--without-for" in flags:
                rule.pop("for", None)
    Path(out).write_text(yaml.safe_dump(doc, sort_keys=False))
    ok(f"wrote {out}")


def grafana(dashboard: str | None = None) -> None:
    """The dashboard JSON against the provisioning files and compose: valid JSON, unique
    panel ids, every querying panel, target and variable on a provisioned datasource."""
    compose, _ = compose_model()
    services = compose["services"]
    service = services.get("grafana", {})
    mounts = {}
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        mounts[target] = (ROOT / source).resolve()

    print("deploy/grafana/provisioning")
    datasources: dict[str, str] = {}
    for path in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml")):
        for source in yaml.safe_load(path.read_text()).get("datasources", []):
            datasources[source["uid"]] = source["type"]
            host, port = host_port(source["url"])
            check(host in services, f"datasource {source['uid']} points at compose service {host}")
            if host == "prometheus" and host in services:
                listen = next(a for a in services[host]["command"] if a.startswith("--web.listen-address="))
                check(port == host_port(listen.split("=", 1)[1])[1], f"datasource {source['uid']} uses Prometheus' listen port {port}")
    check(bool(datasources), f"datasources provisioned: {sorted(datasources)}")
    for kind in ("datasources", "dashboards"):
        check(mounts.get(f"/etc/grafana/provisioning/{kind}") == (GRAFANA / "provisioning" / kind).resolve(), f"compose mounts provisioning/{kind} where Grafana reads it")
    for path in sorted((GRAFANA / "provisioning" / "dashboards").glob("*.yml")):
        for provider in yaml.safe_load(path.read_text()).get("providers", []):
            folder = provider["options"]["path"]
            check(mounts.get(folder) == DASHBOARD.parent.resolve(), f"dashboard provider {provider['name']} reads {folder}, where compose mounts deploy/grafana/dashboards")
    home = env_list(service.get("environment")).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        folder, _, name = home.rpartition("/")
        check(mounts.get(folder) is not None and (mounts[folder] / name).is_file(), f"the home dashboard {home} is a mounted file")

    path = Path(dashboard) if dashboard else DASHBOARD
    print(path.name)
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        fail(f"{path.name} is not JSON: {error}")
        return
    check(bool(board.get("uid")) and bool(board.get("title")), f"uid {board.get('uid')!r} and title set")

    def on_datasource(where: str, datasource) -> None:
        uid = (datasource or {}).get("uid") if isinstance(datasource, dict) else None
        if uid not in datasources:
            fail(f"{where}: datasource {datasource!r} is not a provisioned one ({sorted(datasources)})")
        elif datasource.get("type") != datasources[uid]:
            fail(f"{where}: datasource type {datasource.get('type')!r} is not {datasources[uid]!r}")

    ids: list = []
    queries = 0

    def walk(panels) -> None:
        nonlocal queries
        for panel in panels or []:
            title = panel.get("title", "?")
            ids.append(panel.get("id"))
            if panel.get("type") not in PANEL_TYPES:
                fail(f"panel {title!r}: type {panel.get('type')!r} is not one of {sorted(PANEL_TYPES)}")
            grid = panel.get("gridPos", {})
            if not (all(isinstance(grid.get(k), int) for k in "hwxy") and grid["x"] + grid["w"] <= 24):
                fail(f"panel {title!r}: gridPos {grid} is not within the 24 columns")
            targets = panel.get("targets") or []
            if panel.get("type") in ("row", "text"):
                if targets:
                    fail(f"panel {title!r} ({panel['type']}) has queries")
            else:
                if not targets:
                    fail(f"panel {title!r} has no queries")
                on_datasource(f"panel {title!r}", panel.get("datasource"))
                refs = [t.get("refId") for t in targets]
                if len(set(refs)) != len(refs) or None in refs:
                    fail(f"panel {title!r}: refIds {refs} are not unique")
                for target in targets:
                    queries += 1
                    if "datasource" in target:
                        on_datasource(f"panel {title!r} query {target.get('refId')}", target["datasource"])
                    if not str(target.get("expr", "")).strip():
                        fail(f"panel {title!r} query {target.get('refId')} has no expr")
            walk(panel.get("panels"))

    walk(board.get("panels"))
    duplicates = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    check(all(isinstance(i, int) for i in ids) and not duplicates, f"{len(ids)} panels, integer ids, unique (duplicates: {duplicates})")
    check(queries >= 20, f"{queries} queries")
    variables = [v for v in board.get("templating", {}).get("list", []) if v.get("type") == "query"]
    for variable in variables:
        on_datasource(f"variable {variable.get('name')}", variable.get("datasource"))
    ok(f"datasources of {queries} queries and {len(variables)} variables looked at (any other is a FAIL above)")


def monitoring_static(services: dict, pod_labels: dict, container: dict) -> None:
    """The alerting rules, their tests and docs, the PodMonitor, and the rule files'
    mounts (part of `static`)."""
    print("deploy/prometheus.yml rule_files and their compose mounts")
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    mounts = {}
    for volume in services["prometheus"].get("volumes") or []:
        source, target = volume.split(":")[:2]
        mounts[target] = (ROOT / source).resolve()
    config_target = next(t for t, s in mounts.items() if s == (ROOT / "deploy" / "prometheus.yml").resolve())
    rule_files = prometheus.get("rule_files") or []
    check(bool(rule_files), f"rule_files: {rule_files}")
    for entry in rule_files:
        local = (ROOT / "deploy" / entry).resolve()
        in_container = entry if entry.startswith("/") else f"{config_target.rpartition('/')[0]}/{entry}"
        check(local == RULES.resolve(), f"rule file {entry} is deploy/prometheus/rules.yml (relative to deploy/prometheus.yml)")
        check(mounts.get(in_container) == local, f"compose mounts it at {in_container}, relative to the mounted config")
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    check(ALERT_JOB in jobs, f"compose's Prometheus has the job {ALERT_JOB} the alerts select")

    print("deploy/prometheus/rules.yml: conventions, unit tests, runbooks")
    doc = yaml.safe_load(RULES.read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    tested = set(re.findall(r"alertname:\s*(\S+)", RULES_TESTS.read_text()))
    guide = OPERATIONS.read_text()
    headings = set(re.findall(r"^#+\s+`?(\w+)`?\s*$", guide, re.M))
    for alert in alerts:
        name = alert["alert"]
        check(alert.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity {alert.get('labels', {}).get('severity')} is one of {sorted(SEVERITIES)}")
        check({"summary", "description", "runbook"} <= set(alert.get("annotations", {})), f"{name}: summary, description and runbook annotations")
        check(f'job="{ALERT_JOB}"' in alert["expr"], f'{name}: selects job="{ALERT_JOB}"')
        check(name in tested, f"{name} has unit tests in rules.test.yml")
        check(name in headings, f"{name} has a section in docs/operations.md")
    check(len(alerts) >= 5, f"{len(alerts)} alerts")

    print("deploy/kubernetes/monitoring (a kustomize Component: not in the base)")
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    check(kustomization.get("kind") == "Component", "monitoring/ is a kustomize Component")
    listed = set(kustomization.get("resources", []))
    for path in sorted(MONITORING.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            check(path.name in listed, f"monitoring/{path.name} is listed in its kustomization")
    base = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "kustomization.yaml").read_text())
    check(not any("monitoring" in r for r in base.get("resources", [])), "the base does not include the operator's kinds")
    podmonitor = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text())
    check(podmonitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), "the PodMonitor selects the Deployment's pods")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for endpoint in podmonitor["spec"]["podMetricsEndpoints"]:
        check(endpoint["port"] == "ops" and "ops" in ports, f"the PodMonitor scrapes the container port {endpoint['port']} (the operations port)")
        check(endpoint.get("path", "/metrics") == "/metrics", "the PodMonitor scrapes /metrics")
    job_label = podmonitor["spec"].get("jobLabel")
    check(pod_labels.get(job_label) == ALERT_JOB, f"the PodMonitor's jobLabel {job_label} gives job={pod_labels.get(job_label)!r}, the job the alerts select")


# -------------------------------------------------------------------------------- smoke


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remap(value: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        value = value.replace(old, new)
    return value


class Processes:
    def __init__(self):
        self.running: list[tuple[str, subprocess.Popen, signal.Signals]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], stop_signal: str = "SIGTERM") -> subprocess.Popen:
        LOGS.mkdir(parents=True, exist_ok=True)
        out = open(LOGS / f"{name}.out", "w")
        err = open(LOGS / f"{name}.err", "w")
        base = {"PATH": f"{RUNTIME_FS / 'usr/local/bin'}:/usr/bin:/bin", "HOME": str(WORK)}
        process = subprocess.Popen(argv, env={**base, **env}, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.running.append((name, process, signal.Signals[stop_signal]))
        print(f"  ..   started {name}: {shlex.join(argv)}", flush=True)
        return process

    def stop_all(self) -> None:
        for name, process, stop_signal in reversed(self.running):
            if process.poll() is None:
                process.send_signal(stop_signal)
                try:
                    code = process.wait(timeout=25)
                    check(code == 0, f"{name} stopped cleanly on {stop_signal.name} (exit {code})")
                except subprocess.TimeoutExpired:
                    process.kill()
                    fail(f"{name} did not stop within 25 s of SIGTERM")
        self.running.clear()


def wait_healthy(name: str, argv: list[str], process: subprocess.Popen, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"{name} exited with {process.returncode} (log: {LOGS.relative_to(ROOT)}/{name}.err)")
            print((LOGS / f"{name}.err").read_text()[-2000:])
            return False
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode == 0:
            ok(f"{name} healthy: {shlex.join(argv)}")
            return True
        time.sleep(0.5)
    fail(f"{name} not healthy within {timeout:.0f} s: {shlex.join(argv)}")
    return False


def http_get(url: str, headers: dict | None = None):
    """(status, headers (case-insensitive), body)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def resolve(argv: list[str]) -> list[str]:
    """An image path (/usr/local/bin/x) to the emulated runtime filesystem."""
    return [str(RUNTIME_FS / a.lstrip("/")) if a.startswith("/usr/local/bin/") else a for a in argv]


def smoke() -> None:
    dockerfile = Dockerfile(ROOT / "Dockerfile")
    image = dockerfile.image_config()
    bin_dir = RUNTIME_FS / "usr" / "local" / "bin"
    if not (bin_dir / "genesys-proxy").is_file():
        fail("no runtime binaries: run `check_deploy.py build` first")
        return
    print("the image's binaries")
    for name in ("genesys-proxy", "genesys-sim"):
        version = subprocess.run([str(bin_dir / name), "--version"], capture_output=True, text=True).stdout.strip()
        check(version.startswith(name + " "), f"/usr/local/bin/{name} is {name}: {version!r}")
        sections = subprocess.run(["readelf", "-S", str(bin_dir / name)], capture_output=True, text=True).stdout
        keep = "true" in [v for k, v in [s.split("=", 1) for s in Dockerfile.steps(dockerfile.stage("builder"), "ARG") if "=" in s] if k == "KEEP_DEBUGINFO"]
        check((".debug_line" in sections) == keep, f"{name}: debug info {'kept' if keep else 'stripped'} (KEEP_DEBUGINFO)")
    processes = Processes()
    try:
        print("the image's default command (demo mode) and its HEALTHCHECK")
        port = free_port()
        table = {"0.0.0.0:8080": f"127.0.0.1:{port}", "127.0.0.1:8080": f"127.0.0.1:{port}"}
        argv = resolve([remap(a, table) for a in image["entrypoint"] + image["cmd"]])
        env = {k: remap(v, table) for k, v in image["env"].items()}
        demo = processes.start("image-default", argv, env)
        if wait_healthy("image-default", resolve([remap(a, table) for a in image["healthcheck"]]), demo):
            banner = (LOGS / "image-default.out").read_text()
            check("demo API key" in banner, "demo mode prints its API key to stdout (docker logs)")
        processes.stop_all()

        compose_smoke(processes, image)
        processes.stop_all()

        print("deploy/kubernetes: the Deployment's container, with the ConfigMaps, against a simulator")
        docs = []
        for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        sim_port, proxy_port, ops_port = free_port(), free_port(), free_port()
        table = {"0.0.0.0:8080": f"127.0.0.1:{proxy_port}", "0.0.0.0:8090": f"127.0.0.1:{ops_port}"}
        sim_process = processes.start("k8s-sim", [str(bin_dir / "genesys-sim"), "--listen", f"127.0.0.1:{sim_port}"], {}, "SIGINT")
        if wait_healthy("k8s-sim", [str(bin_dir / "genesys-proxy"), "healthcheck", "--url", f"http://127.0.0.1:{sim_port}/sim/clock"], sim_process):
            mount_dir = WORK / "k8s-mounts"
            shutil.rmtree(mount_dir, ignore_errors=True)
            mounts = {}
            for volume_mount in container["volumeMounts"]:
                volume = next(v for v in pod["volumes"] if v["name"] == volume_mount["name"])
                local = mount_dir / volume_mount["name"]
                local.mkdir(parents=True)
                for key, text in config_maps[volume["configMap"]["name"]]["data"].items():
                    (local / key).write_text(remap(text, table))
                mounts[volume_mount["mountPath"]] = str(local)
            env = dict(image["env"])
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(config_maps[source["configMapRef"]["name"]]["data"])
            # The Secret, with the simulator's credentials; explicit URLs win over the region.
            env.update({
                "GENESYS_CLIENT_ID": "sim-client",
                "GENESYS_CLIENT_SECRET": "sim-secret",
                "GENESYS_API_URL": f"http://127.0.0.1:{sim_port}",
                "GENESYS_LOGIN_URL": f"http://127.0.0.1:{sim_port}",
            })
            env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
            argv = list(image["entrypoint"]) + [
                remap(a, mounts) if a.startswith("/etc/") else a for a in container.get("args", image["cmd"])
            ]
            proxy_process = processes.start("k8s-proxy", resolve(argv), env)
            # A probe's port by its name in the container's ports, moved to loopback.
            by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
            local_port = {8080: proxy_port, 8090: ops_port}

            def probe_url(kind: str) -> str:
                get = container[kind]["httpGet"]
                port = by_name.get(get["port"], get["port"])
                return f"http://127.0.0.1:{local_port.get(port, port)}{get['path']}"

            if wait_healthy("k8s-proxy", [str(bin_dir / "genesys-proxy"), "healthcheck", "--url", probe_url("readinessProbe")], proxy_process):
                for kind in ("livenessProbe", "readinessProbe"):
                    status, _, _ = http_get(probe_url(kind))
                    check(status == 200, f"{kind} GET {probe_url(kind)}: {status}")
                annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
                scrape = f"http://127.0.0.1:{local_port.get(int(annotations['prometheus.io/port']))}{annotations['prometheus.io/path']}"
                status, headers, _ = http_get(scrape)
                check(status == 200 and headers.get("Content-Type", "").startswith("text/plain"), f"the prometheus.io/* annotations' target serves Prometheus text ({status})")
                log = (LOGS / "k8s-proxy.err").read_text().strip().splitlines()
                check(bool(log) and all(line.startswith("{") for line in log), "logs are JSON lines (telemetry.log_format = json)")
        processes.stop_all()
    finally:
        for _, process, _ in processes.running:
            if process.poll() is None:
                process.kill()


def compose_smoke(processes: Processes, image: dict) -> None:
    """docker-compose.yml's sim, redis, proxy replicas and load balancer, started as compose
    starts them (their addresses moved to loopback ports): the replicas share one token."""
    print("docker-compose.yml: sim, redis, the proxy replicas and the load balancer, as compose starts them")
    compose, env_example = compose_model()
    services = compose["services"]
    replicas = proxy_replicas(services)
    sim_port, closed = free_port(), free_port()
    table = {
        "0.0.0.0:9090": f"127.0.0.1:{sim_port}",
        "127.0.0.1:9090": f"127.0.0.1:{sim_port}",
        "sim:9090": f"127.0.0.1:{sim_port}",
        "otel-collector:4318": f"127.0.0.1:{closed}",
    }
    sim = services["sim"]
    sim_argv = resolve([remap(a, table) for a in sim["entrypoint"] + sim["command"]])
    sim_process = processes.start("compose-sim", sim_argv, {}, sim.get("stop_signal", "SIGTERM"))
    sim_health = resolve([remap(a, table) for a in sim["healthcheck"]["test"][1:]])
    if not wait_healthy("compose-sim", sim_health, sim_process):
        return

    # Redis, as compose runs it (its command), on a loopback port.
    redis_url = env_list(services[replicas[0]]["environment"]).get("GENESYS_PROXY_REDIS__URL", "")
    redis_host, redis_port = host_port(redis_url) if redis_url else ("", 0)
    shared = bool(redis_url) and shutil.which("redis-server") is not None
    if redis_url and not shared:
        (fail if os.environ.get("CI") else warn)("redis-server is not installed: the replicas run alone, shared mode is not exercised")
    if shared:
        local_redis = free_port()
        table[f"{redis_host}:{redis_port}"] = f"127.0.0.1:{local_redis}"
        command = services[redis_host]["command"]
        redis_process = processes.start("compose-redis", [shutil.which("redis-server"), *command[1:], "--port", str(local_redis), "--bind", "127.0.0.1"], {})
        if not wait_healthy("compose-redis", ["redis-cli", "-p", str(local_redis), "ping"], redis_process):
            return

    api_ports = {}
    for name in replicas:
        service = services[name]
        api_port, ops_port = free_port(), free_port()
        api_ports[name] = api_port
        own = {
            **table,
            "0.0.0.0:8080": f"127.0.0.1:{api_port}",
            "127.0.0.1:8080": f"127.0.0.1:{api_port}",
            "0.0.0.0:8090": f"127.0.0.1:{ops_port}",
            "127.0.0.1:8090": f"127.0.0.1:{ops_port}",
        }
        # The mounted files, with their addresses moved to loopback ports (the image sets no
        # listen address of its own: the file's is the one used).
        mounts = {}
        mount_dir = WORK / "compose-mounts" / name
        shutil.rmtree(mount_dir, ignore_errors=True)
        mount_dir.mkdir(parents=True)
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            local = mount_dir / Path(target).name
            local.write_text(remap((ROOT / source).read_text(), own))
            mounts[target] = str(local)
        argv = resolve([remap(mounts.get(a, a), own) for a in image["entrypoint"] + service["command"]])
        env = {k: remap(v, own) for k, v in {**image["env"], **env_list(service["environment"])}.items()}
        if not shared:
            env.pop("GENESYS_PROXY_REDIS__URL", None)
        env["HOSTNAME"] = name
        process = processes.start(f"compose-{name}", argv, env)
        health = resolve([remap(a, own) for a in service["healthcheck"]["test"][1:]])
        if not wait_healthy(f"compose-{name}", health, process):
            return
        metrics_port = ops_port if proxy_ports(service)[1] != proxy_ports(service)[0] else api_port
        status, headers, _ = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        check(status == 200 and headers.get("Content-Type", "").startswith("text/plain"), f"{name}: /metrics (Prometheus' scrape target) serves Prometheus text ({status}, {headers.get('Content-Type')})")
        if metrics_port != api_port:
            status, _, _ = http_get(f"http://127.0.0.1:{api_port}/metrics")
            if status != 404:
                warn(f"{name}: /metrics is still served on the API port too ({status}) although server.ops_listen is set")

    auth = {"Authorization": f"Bearer {env_example['DEMO_API_KEY']}"}

    def admin_cache(port: int) -> dict:
        status, _, body = http_get(f"http://127.0.0.1:{port}/admin/cache", auth)
        return json.loads(body) if status == 200 else {"status": status}

    for name, port in api_ports.items():
        view = admin_cache(port)
        check("status" not in view, f"{name}: the demo client's key from .env.example is accepted (/admin/cache: {view.get('status', 200)})")
    if shared:
        # Every replica has announced itself within a heartbeat or two.
        deadline = time.monotonic() + 15
        while True:
            views = {name: admin_cache(port).get("shared") or {} for name, port in api_ports.items()}
            if all(v.get("live_replicas") == len(replicas) for v in views.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for name, view in views.items():
            token = view.get("token") or {}
            check(
                view.get("mode") == "shared" and view.get("live_replicas") == len(replicas),
                f"{name}: shared mode, {len(replicas)} live replicas (mode {view.get('mode')!r}, live_replicas {view.get('live_replicas')})",
            )
            check(token.get("held_in_redis") is True and token.get("this_replica_uses_it") is True, f"{name}: uses the one token held in Redis ({token})")
        status, _, body = http_get(f"http://127.0.0.1:{sim_port}/sim/counters")
        issued = json.loads(body).get("tokens_issued") if status == 200 else None
        check(issued == 1, f"the simulator issued one token for {len(replicas)} replicas (tokens_issued: {issued})")

    found = load_balancer(services)
    nginx = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if found is None:
        return
    if nginx is None:
        (fail if os.environ.get("CI") else warn)("nginx is not installed: the load balancer's configuration is not run")
        return
    name, lb, conf = found
    lb_dir = WORK / "compose-lb"
    shutil.rmtree(lb_dir, ignore_errors=True)
    lb_dir.mkdir(parents=True)
    # Its listen ports and upstreams moved to loopback, its /tmp paths into lb_dir.
    listens = {port: free_port() for port in nginx_listen_ports(conf)}
    text = conf
    for port, local in listens.items():
        text = re.sub(rf"(\blisten\s+){port}\b", rf"\g<1>127.0.0.1:{local}", text)
    api_port_in_container = proxy_ports(services[replicas[0]])[0]
    for replica, local in api_ports.items():
        text = text.replace(f"{replica}:{api_port_in_container}", f"127.0.0.1:{local}")
    text = text.replace("/tmp/", f"{lb_dir}/")
    (lb_dir / "nginx.conf").write_text(text)
    test = subprocess.run([nginx, "-t", "-q", "-p", str(lb_dir), "-c", str(lb_dir / "nginx.conf"), "-g", f"error_log {lb_dir}/error.log;"], capture_output=True, text=True)
    if not check(test.returncode == 0, f"{name}: nginx -t accepts deploy/compose/nginx.conf {test.stderr.strip()[-300:]}"):
        return
    process = processes.start(f"compose-{name}", [nginx, "-p", str(lb_dir), "-c", str(lb_dir / "nginx.conf"), "-g", "daemon off;"], {}, "SIGQUIT")
    health_port = host_port(lb["healthcheck"]["test"][-1])[1]
    health_url = remap(lb["healthcheck"]["test"][-1], {f"127.0.0.1:{health_port}": f"127.0.0.1:{listens[health_port]}"})
    if not wait_healthy(f"compose-{name}", [str(RUNTIME_FS / "usr/local/bin/genesys-proxy"), "healthcheck", "--url", health_url], process):
        return
    published = int(lb["ports"][0].rsplit(":", 1)[1])
    served_by = set()
    for _ in range(2 * len(replicas)):
        status, _, body = http_get(f"http://127.0.0.1:{listens[published]}/admin/cache", auth)
        if status == 200 and shared:
            served_by.add((json.loads(body).get("shared") or {}).get("replica"))
        check(status == 200, f"{name}: /admin/cache through the load balancer: {status}")
    if shared:
        check(len(served_by) == len(replicas), f"{name}: round robin reached every replica ({len(served_by)} of {len(replicas)})")


# -------------------------------------------------------------------------------- cited


# Files the guide tells the operator to write; they are not in the repository.
OPERATOR_FILES = {".env", "docker-compose.override.yml"}
CITED = re.compile(
    r"(?<![\w/.$-])((?:[\w.-]+/)*(?:[\w-][\w.-]*\.(?:md|toml|ya?ml|json|txt|py|rs|lock|example)|Dockerfile|\.dockerignore))(?![\w/-]|\.\w)"
)


def cited(guide: str = "docs/deployment.md") -> None:
    """Every repository file the guide names exists: a relative path (from the repository's
    root) or a bare file name (somewhere in the repository); absolute paths are the image's,
    not the repository's."""
    guide = ROOT / guide
    names = {p.name for p in ROOT.rglob("*") if p.is_file() and not {"target", ".git"} & set(p.relative_to(ROOT).parts)}
    found = sorted(set(CITED.findall(guide.read_text())))
    for path in found:
        if path in OPERATOR_FILES:
            continue
        exists = (ROOT / path).exists() if "/" in path else path in names
        check(exists, f"{guide.name} cites {path}, which {'exists' if exists else 'is not in the repository'}")
    check(len(found) > 10, f"{len(found)} cited files found (the pattern still matches the guide)")


def main() -> int:
    commands = {"static": static, "build": build, "smoke": smoke, "cited": cited, "rules": rules, "unit-rules": unit_rules, "grafana": grafana, "hpa": hpa}
    takes_arguments = {"cited", "rules", "unit-rules", "grafana", "hpa"}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or (len(sys.argv) > 2 and sys.argv[1] not in takes_arguments):
        print(__doc__)
        return 2
    commands[sys.argv[1]](*sys.argv[2:])
    if warnings:
        print(f"  {len(warnings)} warning(s)")
    if failures:
        print(f"{len(failures)} check(s) failed:")
        for message in failures:
            print(f"  - {message}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
