"""`suanli server` (run the control plane) and `suanli server-stop` (stop the local one)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cluster.federation import HEALTHY_AFTER_ANSWERS, LOST_AFTER_MISSED
from runtime.cli.common import console, fail


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless told otherwise)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port (0: any free port, written to server.json)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="State directory (default SUANLI_STATE_DIR or "
                                          "~/.suanli): the SQLite store, runs, logs."),
    store_url: str | None = typer.Option(None, "--store-url", envvar="SUANLI_STORE_URL",
                                         help="postgresql+psycopg://USER@HOST:PORT/DB for several servers."),
    emulate: Path | None = typer.Option(None, "--emulate", help="Start an emulated cluster from this YAML file."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Join this Ray cluster (HOST:PORT)."),
    policy: str = typer.Option("hetero", "--policy", help="Placement policy."),
    lease_ttl: float = typer.Option(8.0, "--lease-ttl", help="Seconds a controller lease lasts without renewal."),
    lease_renew: float = typer.Option(2.0, "--lease-renew", help="Seconds between lease renewals."),
    profile: Path | None = typer.Option(None, "--profile", help="A `suanli bench --save-profile` file: measured "
                                        "throughputs for the scheduler."),
    serve_port: int = typer.Option(8000, "--serve-port", help="Port of Ray Serve's HTTP entry for deployed models."),
    data_dir: list[Path] = typer.Option([], "--data-dir", help="Only datasets under these directories may be read "
                                        "(repeatable; default: any file the server's user can read); feature jobs "
                                        "read and write only under DIR/<tenant>/ and need one."),
    s3_endpoint: list[str] = typer.Option([], "--s3-endpoint", help="An S3 endpoint datasets may name in s3:// URIs "
                                          "(repeatable; 'aws' for AWS's own, else e.g. https://minio.bank:9000; "
                                          "default: none, every s3:// URI is refused)."),
    signing_public_key: Path | None = typer.Option(None, "--signing-public-key", help="The public key (PEM) every "
                                                   "model the server promotes or deploys must be signed for (default: "
                                                   "STATE_DIR/signing/trusted-public.pem)."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Where attempts write checkpoints and progress "
                                         "(storage every Ray node reaches; default STATE_DIR/runs). Keep the state "
                                         "directory itself private to the server."),
    jwt_public_key: Path | None = typer.Option(None, "--jwt-public-key", help="Also accept JWTs (ES256/RS256) "
                                               "signed by this identity provider key (OIDC); see --jwt-issuer."),
    jwt_issuer: str | None = typer.Option(None, "--jwt-issuer"),
    jwt_audience: str = typer.Option("suanli", "--jwt-audience"),
    metrics_public: bool = typer.Option(False, "--metrics-public", help="Serve /metrics without a token (for a "
                                        "Prometheus inside the cluster's network policy)."),
    cluster_lost_after: int = typer.Option(LOST_AFTER_MISSED, "--cluster-lost-after", min=1, max=150,
                                           help="Missed probes (one every 2 s) before a registered cluster is lost "
                                           "and its jobs move: 3 detects a loss in about 6 s; a stall shorter "
                                           "than about 2 s x (N - 1) moves nothing."),
    cluster_healthy_after: int = typer.Option(HEALTHY_AFTER_ANSWERS, "--cluster-healthy-after", min=1, max=150,
                                              help="Answers in a row before a lost cluster is scheduled onto again."),
    ssl_certfile: Path | None = typer.Option(None, "--ssl-certfile", help="Serve the API over HTTPS with this "
                                             "certificate (PEM, chain included); needs --ssl-keyfile."),
    ssl_keyfile: Path | None = typer.Option(None, "--ssl-keyfile", help="The private key (PEM) of --ssl-certfile."),
) -> None:
    """Run the suanli server: the API, the job store and (while it holds the lease) the controller."""
    import cluster
    from cluster.errors import ConfigError
    from runtime.log_context import configure_logging
    from runtime.server.auth import JwtIssuer
    from runtime.server.service import Server, ServerOptions
    from runtime.store import StoreError

    configure_logging(logging.INFO)  # every line: job=... attempt=... cluster=...
    if (jwt_public_key is None) != (jwt_issuer is None):
        raise fail("--jwt-public-key and --jwt-issuer go together")
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise fail("--ssl-certfile and --ssl-keyfile go together: give the certificate and its private key")
    if ssl_certfile is not None:
        check_tls_pair(ssl_certfile, ssl_keyfile)
    try:
        jwt = JwtIssuer(jwt_public_key.read_bytes(), jwt_issuer, jwt_audience) if jwt_public_key else None
        options = ServerOptions(
            state_dir=state_dir or cluster.load_config().state_path, host=host, port=port, store_url=store_url,
            ray_address=ray_address, emulate=emulate, policy=policy, lease_ttl_s=lease_ttl,
            lease_renew_s=lease_renew, profile=profile, serve_port=serve_port, data_dirs=[d.expanduser().resolve() for d in data_dir],
            s3_endpoints=s3_endpoint, signing_public_key=signing_public_key,
            metrics_public=metrics_public, runs_dir=runs_dir, jwt=jwt, cluster_lost_after=cluster_lost_after,
            cluster_healthy_after=cluster_healthy_after, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
        instance = Server(options)
        instance.start()
    except (ConfigError, StoreError, ValueError, ConnectionError) as exc:
        raise fail(str(exc)) from None
    instance.serve()  # uvicorn turns SIGTERM/SIGINT into a clean stop that releases the lease


def check_tls_pair(certfile: Path, keyfile: Path) -> None:
    """Load the certificate and its key as uvicorn will, before anything starts; a clear error
    naming the flag otherwise (never the files' content)."""
    import ssl

    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if not path.is_file():
            raise fail(f"{flag}: {path} is not a readable file (PEM, e.g. tls.crt / tls.key of a kubernetes.io/tls "
                       "Secret)")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise fail(f"--ssl-certfile/--ssl-keyfile: {certfile} and {keyfile} are not a PEM certificate and its "
                   f"private key ({exc.strerror or type(exc).__name__})") from None


def server_stop(
    state_dir: Path | None = typer.Option(None, "--state-dir"),
    keep_ray: bool = typer.Option(False, "--keep-ray", help="Leave the state directory's Ray head running."),
) -> None:
    """Stop the local server of a state directory (and its Ray head unless --keep-ray)."""
    import cluster
    from runtime.server.local import stop_local_server

    directory = state_dir or cluster.load_config().state_path
    stopped = stop_local_server(directory, stop_ray=not keep_ray)
    console.print(f"stopped the server of {directory}" if stopped else f"no server was running for {directory}")
