"""A real Kubernetes control plane (etcd + kube-apiserver) for tests.

Why: the operator talks to the Kubernetes API (CRDs, watches, owner references,
server-side validation), and a mock would only test our own idea of that API.
So tests run a real ``kube-apiserver`` backed by a real ``etcd``, envtest style:
no kubelet, no scheduler, no pods running. The binaries are built from the Go
modules pinned in this directory by ``build.sh`` and cached outside the repo
(see README.md); Debian's etcd (3.4) is too old for current API servers.

Usage::

    with ControlPlane() as cp:
        cp.apply("deploy/crds")
        cp.kubectl("get", "namespaces")
        # cp.kubeconfig is an admin kubeconfig (client cert in system:masters)

``start_controller_manager()`` adds a ``kube-controller-manager`` when a test
needs garbage collection of owned objects, namespace finalization, default
service accounts, or Deployments that create ReplicaSets.

Environment:
    GOREPORTS_CONTROLPLANE_BIN  use binaries from this dir instead of build.sh
    GOREPORTS_CACHE             cache root used by build.sh
    GOREPORTS_KEEP_CONTROLPLANE=1  keep the temp dir (logs, data) after stop
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl", "etcd")

ADMIN_USER = "go-reports-admin"
ADMIN_GROUP = "system:masters"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LOG_TAIL_LINES = 40


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or used."""


class KubectlError(subprocess.CalledProcessError):
    """A kubectl call failed; the message includes its stdout and stderr."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}\n--- stdout ---\n{self.stdout or ''}"
            f"\n--- stderr ---\n{self.stderr or ''}"
        )


def build_binaries(*, timeout: float | None = None) -> Path:
    """Return the bin dir with all binaries, building them with build.sh if needed.

    Raises ControlPlaneError (never skips) if they cannot be built.
    """
    override = os.environ.get("GOREPORTS_CONTROLPLANE_BIN")
    if override:
        bin_dir = Path(override)
        missing = [b for b in BINARIES if not (bin_dir / b).is_file()]
        if missing:
            raise ControlPlaneError(
                f"GOREPORTS_CONTROLPLANE_BIN={override} lacks {', '.join(missing)}"
            )
        return bin_dir
    try:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ControlPlaneError(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    if proc.returncode != 0:
        raise ControlPlaneError(
            f"{BUILD_SCRIPT} failed with exit code {proc.returncode}:\n"
            + _tail_text(proc.stderr + proc.stdout, 60)
        )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise ControlPlaneError(f"{BUILD_SCRIPT} printed no bin dir:\n{proc.stderr}")
    bin_dir = Path(lines[-1].strip())
    missing = [b for b in BINARIES if not (bin_dir / b).is_file()]
    if missing:
        raise ControlPlaneError(f"{bin_dir} lacks {', '.join(missing)} after build.sh")
    return bin_dir


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail_text(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _tail_file(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        data = path.read_bytes()[-256 * 1024 :]
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return _tail_text(data.decode("utf-8", "replace"), lines)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Linux: have the child killed if the test process dies without cleanup."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# --------------------------------------------------------------------------- certs


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usages: Sequence[x509.ObjectIdentifier] = (),
    sans: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class _Certs:
    """CA, apiserver serving cert, admin client cert and service-account key."""

    def __init__(self, directory: Path, service_ip: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "go-reports-test-ca")])
        ca_cert = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)

        server_key = ec.generate_private_key(ec.SECP256R1())
        dns = [
            "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        ips = ["127.0.0.1", "::1", service_ip]
        server_cert = _issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            server_key, ca_name, ca_key,
            usages=[ExtendedKeyUsageOID.SERVER_AUTH],
            sans=[x509.DNSName(d) for d in dns]
            + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips],
        )

        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin_cert = _issue(
            x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
            ]),
            admin_key, ca_name, ca_key,
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
        )

        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        self.ca_cert = self._write("ca.crt", _pem_cert(ca_cert))
        self.ca_key = self._write("ca.key", _pem_key(ca_key))
        self.server_cert = self._write("apiserver.crt", _pem_cert(server_cert))
        self.server_key = self._write("apiserver.key", _pem_key(server_key))
        self.admin_cert = self._write("admin.crt", _pem_cert(admin_cert))
        self.admin_key = self._write("admin.key", _pem_key(admin_key))
        self.sa_key = self._write("sa.key", _pem_key(sa_key))
        self.sa_pub = self._write(
            "sa.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


# ----------------------------------------------------------------------- processes


class _Proc:
    def __init__(self, name: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")
        preexec = (
            _set_pdeathsig
            if sys.platform.startswith("linux")
            and threading.current_thread() is threading.main_thread()
            else None
        )
        try:
            self.popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )
        except OSError:
            self._log.close()
            raise

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log.close()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _tail_file(self.log_path, lines)


# ---------------------------------------------------------------------- the plane


class ControlPlane:
    """etcd + kube-apiserver (+ optional kube-controller-manager) on loopback.

    A context manager: ``with ControlPlane() as cp: ...`` starts everything and
    always tears it down (processes stopped, temp dir removed), also on errors.
    """

    def __init__(
        self,
        bin_dir: Path | str | None = None,
        *,
        startup_timeout: float = 120.0,
        service_cluster_ip_range: str = "10.0.0.0/24",
        extra_apiserver_args: Sequence[str] = (),
        build_timeout: float | None = None,
    ) -> None:
        self._bin_dir_arg = Path(bin_dir) if bin_dir is not None else None
        self.startup_timeout = startup_timeout
        self.service_cluster_ip_range = service_cluster_ip_range
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.build_timeout = build_timeout

        self.bin_dir: Path = Path()
        self.tmp_dir: Path = Path()
        self.kubeconfig: Path = Path()
        self.server: str = ""
        self.token: str = ""
        self.etcd_url: str = ""
        self.ca_file: Path = Path()
        self.client_cert_file: Path = Path()
        self.client_key_file: Path = Path()
        self.startup_seconds: float = 0.0

        self._certs: _Certs | None = None
        self._procs: dict[str, _Proc] = {}
        self._started = False

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        """Build/find the binaries, start etcd and kube-apiserver, wait for /readyz."""
        if self._started:
            raise ControlPlaneError("control plane already started")
        self._started = True
        self.bin_dir = self._bin_dir_arg or build_binaries(timeout=self.build_timeout)
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="go-reports-cp-"))
        t0 = time.monotonic()
        try:
            network = ipaddress.ip_network(self.service_cluster_ip_range)
            self._certs = _Certs(self.tmp_dir / "pki", str(next(network.hosts())))
            self.ca_file = self._certs.ca_cert
            self.client_cert_file = self._certs.admin_cert
            self.client_key_file = self._certs.admin_key
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop all processes (newest first) and remove the temp dir. Idempotent."""
        for name in reversed(list(self._procs)):
            with contextlib.suppress(Exception):
                self._procs.pop(name).stop()
        if self.tmp_dir != Path() and self.tmp_dir.exists():
            if os.environ.get("GOREPORTS_KEEP_CONTROLPLANE") == "1":
                print(f"[controlplane] kept {self.tmp_dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.tmp_dir, ignore_errors=True)

    # -- components ----------------------------------------------------------

    def _spawn(
        self,
        name: str,
        binary: str,
        attempt: Callable[[], tuple[list[str], Callable[[], bool]]],
        *,
        tries: int = 3,
    ) -> _Proc:
        """Start ``binary`` and wait until its probe succeeds.

        ``attempt()`` picks fresh ports and returns ``(argv, probe)``; it is called
        again (up to ``tries`` times) if a port was taken in the meantime.
        """
        last_tail = ""
        for _ in range(tries):
            argv, probe = attempt()
            proc = _Proc(name, [str(self.bin_dir / binary), *argv], self.tmp_dir / f"{name}.log")
            self._procs[name] = proc
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline and proc.alive():
                if probe():
                    return proc
                time.sleep(0.25)
            exit_code = proc.popen.poll()
            others = self._all_tails(exclude=name)
            proc.stop()
            del self._procs[name]
            last_tail = proc.tail()
            if exit_code is not None and "address already in use" in last_tail:
                continue
            reason = (
                f"exited with code {exit_code}"
                if exit_code is not None
                else f"was not ready after {self.startup_timeout:.0f}s"
            )
            raise ControlPlaneError(
                f"{name} {reason}.\n--- {name} log ({proc.log_path}) ---\n{last_tail}\n{others}"
            )
        raise ControlPlaneError(f"{name}: ports kept being taken ({tries} tries):\n{last_tail}")

    def _all_tails(self, exclude: str = "") -> str:
        return "\n".join(
            f"--- {name} log ({proc.log_path}) ---\n{proc.tail()}"
            for name, proc in self._procs.items()
            if name != exclude
        )

    def _start_etcd(self) -> None:
        data_dir = self.tmp_dir / "etcd-data"

        def attempt() -> tuple[list[str], Callable[[], bool]]:
            client, peer = free_port(), free_port()
            shutil.rmtree(data_dir, ignore_errors=True)
            self.etcd_url = f"http://127.0.0.1:{client}"
            peer_url = f"http://127.0.0.1:{peer}"
            argv = [
                "--name=go-reports-test",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=go-reports-test={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ]
            return argv, self._etcd_healthy

        self._spawn("etcd", "etcd", attempt)

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _start_apiserver(self) -> None:
        assert self._certs is not None
        certs = self._certs
        self.token = secrets.token_hex(24)
        token_file = self.tmp_dir / "pki" / "tokens.csv"
        token_file.write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n')
        token_file.chmod(0o600)
        cert_dir = self.tmp_dir / "apiserver-certs"
        cert_dir.mkdir(exist_ok=True)

        def attempt() -> tuple[list[str], Callable[[], bool]]:
            port = free_port()
            self.server = f"https://127.0.0.1:{port}"
            argv = [
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # A loopback advertise address is rejected by the endpoint
                # reconciler; tests do not need the `kubernetes` Endpoints.
                "--endpoint-reconciler-type=none",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                f"--tls-cert-file={certs.server_cert}",
                f"--tls-private-key-file={certs.server_key}",
                f"--client-ca-file={certs.ca_cert}",
                f"--token-auth-file={token_file}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={certs.sa_pub}",
                f"--service-account-signing-key-file={certs.sa_key}",
                f"--service-cluster-ip-range={self.service_cluster_ip_range}",
                "--allow-privileged=true",
                # No controller manager by default, so namespaces have no "default"
                # ServiceAccount; do not make pod creation depend on one.
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
                *self.extra_apiserver_args,
            ]
            return argv, lambda: self._get_status("/readyz") == 200

        self._spawn("kube-apiserver", "kube-apiserver", attempt)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.client_cert_file), str(self.client_key_file))
        return ctx

    def _get_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(
                f"{self.server}{path}", timeout=5, context=self._ssl_context()
            ) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, ssl.SSLError):
            return 0

    def _write_kubeconfig(self) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": "go-reports-test",
                "cluster": {
                    "server": self.server,
                    "certificate-authority-data": b64(self.ca_file),
                },
            }],
            "users": [{
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": b64(self.client_cert_file),
                    "client-key-data": b64(self.client_key_file),
                },
            }],
            "contexts": [{
                "name": "go-reports-test",
                "context": {"cluster": "go-reports-test", "user": ADMIN_USER},
            }],
            "current-context": "go-reports-test",
        }
        self.kubeconfig = self.tmp_dir / "kubeconfig"
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def start_controller_manager(self, controllers: Sequence[str] = ("*",)) -> None:
        """Run kube-controller-manager against this API server (GC, namespaces, ...)."""
        if "kube-controller-manager" in self._procs:
            return
        assert self._certs is not None
        certs = self._certs
        cert_dir = self.tmp_dir / "kcm-certs"
        cert_dir.mkdir(exist_ok=True)

        def attempt() -> tuple[list[str], Callable[[], bool]]:
            port = free_port()
            argv = [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                # No front-proxy (requestheader) CA in this cluster: do not look it up.
                "--authentication-skip-lookup=true",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                "--leader-elect=false",
                f"--controllers={','.join(controllers)}",
                f"--service-account-private-key-file={certs.sa_key}",
                f"--root-ca-file={certs.ca_cert}",
                f"--cluster-signing-cert-file={certs.ca_cert}",
                f"--cluster-signing-key-file={certs.ca_key}",
                "--use-service-account-credentials=false",
                f"--service-cluster-ip-range={self.service_cluster_ip_range}",
                "--profiling=false",
            ]

            def probe() -> bool:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                try:
                    with urllib.request.urlopen(
                        f"https://127.0.0.1:{port}/healthz", timeout=2, context=ctx
                    ) as resp:
                        return int(resp.status) == 200
                except (OSError, ssl.SSLError):
                    return False

            return argv, probe

        self._spawn("kube-controller-manager", "kube-controller-manager", attempt)

    # -- helpers -------------------------------------------------------------

    def logs(self, name: str = "kube-apiserver", lines: int = LOG_TAIL_LINES) -> str:
        """Tail of a component's log (etcd, kube-apiserver, kube-controller-manager)."""
        proc = self._procs.get(name)
        return proc.tail(lines) if proc else ""

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl with this control plane's admin kubeconfig."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        argv = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.tmp_dir / 'kubectl-cache'}",
            *args,
        ]
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def apply(
        self, path_or_dir: str | os.PathLike[str], *, server_side: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply`` a manifest file or a directory (recursively).

        Server-side apply by default: large CRDs exceed the size limit of the
        last-applied annotation that client-side apply writes.
        """
        path = Path(path_or_dir)
        args = ["apply", "-f", str(path)]
        if path.is_dir():
            args.append("--recursive")
        if server_side:
            args += ["--server-side", "--force-conflicts", "--field-manager=go-reports-tests"]
        return self.kubectl(*args)

    def wait_for_crd(self, name: str, timeout: float = 60.0) -> None:
        """Wait until the CRD ``name`` (plural.group) is Established."""
        self.kubectl(
            "wait", "--for=condition=Established", f"customresourcedefinition/{name}",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 30,
        )

    def server_version(self) -> dict[str, Any]:
        """The API server's /version document."""
        with urllib.request.urlopen(
            f"{self.server}/version", timeout=10, context=self._ssl_context()
        ) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result


@contextlib.contextmanager
def control_plane(**kwargs: Any) -> Iterator[ControlPlane]:
    """Functional form of ``with ControlPlane(**kwargs) as cp``."""
    with ControlPlane(**kwargs) as cp:
        yield cp
