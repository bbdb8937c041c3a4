"""`certs` command group: the operator's commands over the platform CA.

This module reads no environment itself (`serve` takes its F2_ENROLL_* settings from
certs.settings.EnrollSettings). The main CLI adds `certs_group` and sets `ctx.obj` to a dict:

    "pki_dir":        Path, or Callable[[], Path] called only when a command needs the directory
    "registry_macs":  Callable[[], set[str]] | None; when given, `issue` refuses MACs not in it
    "on_crl_updated": Callable[[Path], None] | None (optional); called with crl.pem's path after
                      `revoke` or `crl` rewrote it: the place to reload the broker
    "on_ca_changed":  Callable[[Path], None] | None (optional); called with the pki dir after `import-ca`
                      put another CA in place: the place to restart the broker
    "broker_user":    str | None (optional, default "mosquitto"); whose group may read server.key
    "registry_dsn":   str, or Callable[[], str] called only when a command needs it: the registry
                      (F2_REGISTRY_DSN) for `serve` and `allow-reenroll`
    "enroll_settings": EnrollSettings, or Callable[[], EnrollSettings] (optional); default
                      EnrollSettings() (environment F2_ENROLL_*)

`--pki-dir` on the group overrides "pki_dir".
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from certs import store
from certs.authority import (
    CA_DAYS,
    DEFAULT_BROKER_USER,
    DEFAULT_CA_NAME,
    DEVICE_DAYS,
    SERVER_DAYS,
    SERVICE_DAYS,
    AdoptedCA,
    CertificateAuthority,
    CertInfo,
    validate_mac,
)
from certs.errors import CertsError, KeyEncryptedError, NotInRegistryError
from certs.settings import EnrollSettings

# A CRL closer than this to its next_update gets a warning in `list`: once it passes, every client is refused.
CRL_WARNING = timedelta(days=2)


@dataclass(frozen=True)
class _CertsState:
    pki_dir_option: Path | None
    parent: Mapping[str, Any]

    def pki_dir(self) -> Path:
        if self.pki_dir_option is not None:
            return self.pki_dir_option
        source = self.parent.get("pki_dir")
        if source is None:
            raise click.UsageError("no pki dir: pass --pki-dir, or run this as `f2 certs ...`")
        return Path(source() if callable(source) else source)

    def authority(self, broker_user: str | None = None) -> CertificateAuthority:
        user = broker_user if broker_user is not None else self.parent.get("broker_user", DEFAULT_BROKER_USER)
        return CertificateAuthority(self.pki_dir(), broker_user=user or None)

    def registry_macs(self) -> Callable[[], set[str]] | None:
        source = self.parent.get("registry_macs")
        return source if callable(source) else None

    def registry_dsn(self) -> str | Callable[[], str]:
        source = self.parent.get("registry_dsn")
        if source is None:
            raise click.UsageError("no registry DSN: run this as `f2 certs ...` (it passes F2_REGISTRY_DSN)")
        return source if callable(source) else str(source)

    def enroll_settings(self) -> EnrollSettings:
        source = self.parent.get("enroll_settings")
        if source is not None:
            settings = source() if callable(source) else source
            if not isinstance(settings, EnrollSettings):
                raise click.UsageError("ctx.obj['enroll_settings'] must be an EnrollSettings")
            return settings
        try:
            return EnrollSettings()
        except ValidationError as exc:
            raise click.ClickException(f"invalid F2_ENROLL_* setting: {exc}") from exc

    def ca_changed(self, pki_dir: Path) -> None:
        hook = self.parent.get("on_ca_changed")
        if callable(hook):
            hook(pki_dir)
        else:
            click.echo(
                "NOTE: restart the broker so it trusts the adopted CA (ca.crt is its cafile) and serves its new "
                "certificate; restart `f2 certs serve` too."
            )

    def crl_updated(self, crl_path: Path) -> None:
        hook = self.parent.get("on_crl_updated")
        if callable(hook):
            hook(crl_path)
        else:
            click.echo(
                "NOTE: the running broker still uses the previous CRL; reload or restart Mosquitto "
                "so it reads the new one."
            )


class _CertsGroup(click.Group):
    """Turns library errors into a one-line `Error: ...` and exit status 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CertsError as exc:
            raise click.ClickException(str(exc)) from exc


def _state(ctx: click.Context) -> _CertsState:
    state = ctx.find_object(_CertsState)
    if state is None:  # a command invoked outside the group
        raise click.UsageError("certs commands run inside the `certs` group")
    return state


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.group(name="certs", cls=_CertsGroup)
@click.option(
    "--pki-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of the CA (default: <state dir>/pki).",
)
@click.pass_context
def certs_group(ctx: click.Context, pki_dir: Path | None) -> None:
    """Certificates of the MQTT broker and of the controllers (mTLS)."""
    parent = ctx.obj if isinstance(ctx.obj, Mapping) else {}
    ctx.obj = _CertsState(pki_dir_option=pki_dir, parent=parent)


@certs_group.command("init")
@click.option("--common-name", default=DEFAULT_CA_NAME, show_default=True, help="CN of the CA certificate.")
@click.option("--days", type=click.IntRange(min=1), default=CA_DAYS, show_default=True)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing CA (archived; every certificate it issued stops working).",
)
@click.option("--yes", is_flag=True, help="Do not ask before --force replaces a CA.")
@click.pass_context
def init_command(ctx: click.Context, common_name: str, days: int, force: bool, yes: bool) -> None:
    """Create the CA and an empty CRL; does nothing when a CA already exists."""
    ca = _state(ctx).authority()
    if force and ca.is_initialized and not yes:
        click.confirm(f"Replace the CA in {ca.pki_dir}? Every certificate it issued stops being trusted", abort=True)
    if ca.init(common_name=common_name, days=days, force=force):
        click.echo(f"created CA {common_name!r} in {ca.pki_dir}")
    else:
        click.echo(f"CA already exists in {ca.pki_dir}; left unchanged (use --force to replace it)")
    click.echo(f"cafile  {ca.ca_cert_path}")
    click.echo(f"crlfile {ca.crl_path}")


@certs_group.command("issue")
@click.argument("mac")
@click.option("--days", type=click.IntRange(min=1), default=DEVICE_DAYS, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also copy <mac>.crt, <mac>.key and ca.crt here, to provision the controller.",
)
@click.option(
    "--csr",
    "csr_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Sign this PEM CSR (CN must be the MAC) instead of generating a key.",
)
@click.pass_context
def issue_command(ctx: click.Context, mac: str, days: int, out: Path | None, csr_path: Path | None) -> None:
    """Issue a client certificate for controller MAC."""
    state = _state(ctx)
    validate_mac(mac)
    registry_macs = state.registry_macs()
    if registry_macs is not None and mac not in registry_macs():
        raise NotInRegistryError(f"MAC {mac} is not a controller in the registry; add it first")
    ca = state.authority()
    issued = ca.issue_device(mac, days=days, csr_pem=csr_path.read_bytes() if csr_path else None)
    click.echo(f"issued certificate {issued.serial} for {mac}, valid until {_when(issued.not_after)}")
    click.echo(f"certificate {issued.cert_path}")
    if issued.key_path is not None:
        click.echo(f"key         {issued.key_path}")
    if out is not None:
        store.ensure_dir(out, store.PRIVATE_DIR_MODE)
        store.atomic_write(out / f"{mac}.crt", issued.cert_pem, store.PUBLIC_MODE)
        if issued.key_pem is not None:
            store.atomic_write(out / f"{mac}.key", issued.key_pem, store.PRIVATE_MODE)
        store.atomic_write(out / "ca.crt", ca.ca_cert_path.read_bytes(), store.PUBLIC_MODE)
        click.echo(f"copied to {out}")


@certs_group.command("server")
@click.option("--host", "hosts", multiple=True, help="DNS name clients connect to (repeatable).")
@click.option("--ip", "ips", multiple=True, help="IP address clients connect to (repeatable).")
@click.option("--days", type=click.IntRange(min=1), default=SERVER_DAYS, show_default=True)
@click.option(
    "--broker-user",
    default=None,
    help="User whose group may read server.key (default: mosquitto; '' to leave ownership alone).",
)
@click.pass_context
def server_command(
    ctx: click.Context, hosts: Sequence[str], ips: Sequence[str], days: int, broker_user: str | None
) -> None:
    """Issue the broker's server certificate (replaces server.crt and server.key)."""
    ca = _state(ctx).authority(broker_user=broker_user)
    issued = ca.issue_server(list(hosts), list(ips), days=days)
    click.echo(
        f"issued server certificate {issued.serial} for {issued.common_name}, valid until {_when(issued.not_after)}"
    )
    click.echo(f"certfile {ca.server_cert_path}")
    click.echo(f"keyfile  {ca.server_key_path}")


@certs_group.command("service")
@click.argument("name")
@click.option("--days", type=click.IntRange(min=1), default=SERVICE_DAYS, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also copy <name>.crt, <name>.key and ca.crt here (e.g. to make the bridge's Secret from).",
)
@click.pass_context
def service_command(ctx: click.Context, name: str, days: int, out: Path | None) -> None:
    """Issue a client certificate for the platform service account NAME (the bridge's: its MQTT account, e.g.
    f2-bridge), for F2_MQTT_TLS_CERT and F2_MQTT_TLS_KEY."""
    ca = _state(ctx).authority()
    issued = ca.issue_service(name, days=days)
    click.echo(f"issued service certificate {issued.serial} for {name}, valid until {_when(issued.not_after)}")
    click.echo(f"certificate {issued.cert_path}")
    click.echo(f"key         {issued.key_path}")
    if out is not None:
        store.ensure_dir(out, store.PRIVATE_DIR_MODE)
        store.atomic_write(out / f"{name}.crt", issued.cert_pem, store.PUBLIC_MODE)
        assert issued.key_pem is not None
        store.atomic_write(out / f"{name}.key", issued.key_pem, store.PRIVATE_MODE)
        store.atomic_write(out / "ca.crt", ca.ca_cert_path.read_bytes(), store.PUBLIC_MODE)
        click.echo(f"copied to {out}")


@certs_group.command("revoke")
@click.argument("mac")
@click.pass_context
def revoke_command(ctx: click.Context, mac: str) -> None:
    """Revoke every certificate of controller MAC and rewrite the CRL."""
    state = _state(ctx)
    ca = state.authority()
    serials = ca.revoke(mac)
    if not serials:
        if any(row.kind == "device" and row.common_name == mac for row in ca.list_certs()):
            click.echo(f"every certificate of {mac} was already revoked; nothing to do")
            return
        raise click.ClickException(f"no certificate was ever issued to {mac}; check the MAC with `f2 certs list`")
    for serial in serials:
        click.echo(f"revoked {serial} ({mac})")
    click.echo(f"rewrote {ca.crl_path}")
    state.crl_updated(ca.crl_path)


@certs_group.command("crl")
@click.pass_context
def crl_command(ctx: click.Context) -> None:
    """Re-sign the CRL with a fresh expiry (run it on a schedule: an expired CRL locks every device out)."""
    state = _state(ctx)
    ca = state.authority()
    next_update = ca.refresh_crl()
    click.echo(f"rewrote {ca.crl_path}, valid until {_when(next_update)}")
    state.crl_updated(ca.crl_path)


@certs_group.command("list")
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """List every issued certificate; warn about those expiring within 30 days."""
    ca = _state(ctx).authority()
    rows = ca.list_certs()
    now = datetime.now(UTC)
    if not rows:
        click.echo(f"no certificates issued yet in {ca.pki_dir}")
    else:
        _print_table(rows)
    for row in rows:
        warning = _expiry_warning(row, now)
        if warning:
            click.echo(warning)
    next_update = ca.crl_next_update()
    if next_update is None and ca.is_initialized:
        click.echo(f"WARNING: {ca.crl_path} is missing and Mosquitto will not start; run `f2 certs crl`")
    elif next_update is not None and next_update - now <= CRL_WARNING:
        state = "expired" if next_update <= now else "expires"
        click.echo(
            f"WARNING: the CRL {state} {_when(next_update)}; once expired the broker refuses every "
            f"device. Run `f2 certs crl` and reload the broker."
        )


@certs_group.command("import-ca")
@click.option(
    "--cert",
    "cert_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate of the CA that issued the devices' certificates, optionally followed by its chain.",
)
@click.option(
    "--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Its key."
)
@click.option(
    "--chain",
    "chain_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM certificates of its issuers up to the self-signed root (when the CA is an intermediate).",
)
@click.option(
    "--crl",
    "crl_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The CA's current CRL (PEM or DER): what it revoked stays revoked.",
)
@click.option(
    "--key-passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="File holding the passphrase of an encrypted key (else asked for on a terminal).",
)
@click.option("--replace", is_flag=True, help="Replace a CA already initialised here (it is archived).")
@click.option("--yes", is_flag=True, help="Do not ask before --replace replaces a CA.")
@click.pass_context
def import_ca_command(
    ctx: click.Context,
    cert_path: Path,
    key_path: Path,
    chain_path: Path | None,
    crl_path: Path | None,
    key_passphrase_file: Path | None,
    replace: bool,
    yes: bool,
) -> None:
    """Adopt an existing CA: devices keep their certificates, the broker trusts it, enrollment issues from it.

    Checked first: the key is the certificate's, it is a CA (basicConstraints CA:TRUE; keyUsage, when present,
    allows keyCertSign and cRLSign), valid now, and its chain reaches a self-signed root. The key is stored
    unencrypted (0600). Then record the certificates it issued with `f2 certs import-issued`.
    """
    state = _state(ctx)
    ca = state.authority()
    password = key_passphrase_file.read_bytes().rstrip(b"\r\n") if key_passphrase_file else None
    if replace and ca.is_initialized and not yes:
        click.confirm(
            f"Replace the CA in {ca.pki_dir}? Devices holding its certificates are refused until they enroll again",
            abort=True,
        )

    def adopt(passphrase: bytes | None) -> AdoptedCA:
        return ca.import_ca(
            cert_path.read_bytes(),
            key_path.read_bytes(),
            chain_pem=chain_path.read_bytes() if chain_path else b"",
            crl_pem=crl_path.read_bytes() if crl_path else None,
            key_password=passphrase,
            replace=replace,
        )

    try:
        adopted = adopt(password)
    except KeyEncryptedError:
        if not sys.stdin.isatty():
            message = f"{key_path} is encrypted: give its passphrase with --key-passphrase-file"
            raise KeyEncryptedError(message) from None
        adopted = adopt(click.prompt(f"Passphrase of {key_path}", hide_input=True).encode())
    cert = adopted.ca.cert
    if adopted.already:
        click.echo(f"{cert.subject.rfc4514_string()} is this platform's CA already; nothing changed")
    else:
        subject, until = cert.subject.rfc4514_string(), _when(cert.not_valid_after_utc)
        click.echo(f"adopted CA {subject} (valid until {until}) in {ca.pki_dir}")
        for issuer in adopted.ca.chain:
            click.echo(f"  chain: {issuer.subject.rfc4514_string()}")
    for note in adopted.ca.notes:
        click.echo(f"NOTE: {note}")
    if adopted.archived is not None:
        click.echo(
            f"the previous CA and its {adopted.previous_certificates} certificate(s) moved to {adopted.archived}; "
            "devices holding them are refused until they enroll again (`f2 certs allow-reenroll <mac>`)"
        )
    if adopted.server is not None:
        click.echo(
            f"issued the broker certificate {adopted.server.serial} again, from the adopted CA, for the same names"
        )
    if crl_path is not None:
        click.echo(f"kept {adopted.revocations} revocation(s) of its CRL; rewrote {ca.crl_path}")
    elif not adopted.already:
        click.echo(
            "WARNING: no --crl given: certificates this CA revoked before are accepted again. Run import-ca again "
            "with --crl, or revoke them here (`f2 certs import-issued`, then `f2 certs revoke <mac>`)."
        )
    if not adopted.already:
        click.echo("next: record the certificates it issued: `f2 certs import-issued <files or folders>`")
        if not ca.server_cert_path.exists():
            click.echo("next: issue the broker certificate: `f2 certs server --host <name devices use> --ip <address>`")
        state.ca_changed(ca.pki_dir)


@certs_group.command("import-issued")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_context
def import_issued_command(ctx: click.Context, paths: tuple[Path, ...]) -> None:
    """Record device certificates the adopted CA issued before (PEM or DER files, or folders of them).

    Each must be signed by the platform's CA and name a controller MAC as its CN. Recorded certificates are
    listed, can be revoked and are watched for expiry like those issued here. Exit status 1 when any is refused
    (the others are recorded; running it again is harmless).
    """
    ca = _state(ctx).authority()
    result = ca.import_issued(paths)
    for source, mac, serial in result.recorded:
        click.echo(f"recorded {serial} ({mac}) from {source}")
    if result.already:
        click.echo(f"{len(result.already)} certificate(s) were recorded already")
    for source, reason in result.refused:
        click.echo(f"refused {source}: {reason}")
    click.echo(f"{len(result.recorded)} certificate(s) recorded")
    if result.refused:
        raise click.ClickException(f"{len(result.refused)} certificate(s) refused (see above); the others are recorded")


@certs_group.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: F2_ENROLL_HOST, else 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Port to listen on (default: F2_ENROLL_PORT, else 18443; 0 picks a free one).",
)
@click.pass_context
def serve_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the HTTPS enrollment endpoint (POST /v1/enroll) until SIGTERM.

    A controller sends its MAC, its registry claiming code and a CSR (or asks for a generated key) and
    gets its certificate. Each claiming code enrolls once; see `allow-reenroll`. Limits and TLS come from
    F2_ENROLL_* (certs/settings.py); the certificate is the CA's server.crt, issued when missing.
    F2_ENROLL_REGISTRY_DSN, when set, replaces the registry DSN (a least-privilege role).
    """
    from certs.enrollment import build_server, configure_logging

    state = _state(ctx)
    settings = state.enroll_settings()
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging()
    server = build_server(settings, state.authority(), settings.registry_dsn or state.registry_dsn())
    click.echo(f"enrollment service on {server.url}/v1/enroll; SIGTERM or Ctrl-C stops it", err=True)
    server.serve_until_signalled()


@certs_group.command("allow-reenroll")
@click.argument("mac")
@click.pass_context
def allow_reenroll_command(ctx: click.Context, mac: str) -> None:
    """Let controller MAC enroll once more with its claiming code (a replaced or reset device)."""
    from certs.enrollment_store import EnrollmentStore

    state = _state(ctx)
    validate_mac(mac)
    permit = EnrollmentStore(state.registry_dsn(), schema=state.enroll_settings().registry_schema).allow_reenroll(mac)
    if not permit.is_controller:
        raise NotInRegistryError(f"MAC {mac} is not a controller in the registry; check the MAC")
    if not permit.enrolled:
        click.echo(f"{mac} has not enrolled yet: it can enroll with its claiming code; nothing to allow")
        return
    click.echo(f"{mac} may enroll once more with its claiming code (enrolled {permit.enrollments} time(s) so far)")
    click.echo(
        f"its current certificate {permit.serial} stays valid. If the old device is lost or replaced, run "
        f"`f2 certs revoke {mac}` now, before it enrolls again (revoke cuts off every certificate of {mac} "
        f"issued so far)"
    )


def _expiry_warning(row: CertInfo, now: datetime) -> str | None:
    if row.revoked or row.superseded:
        return None
    renew = {
        "device": f"f2 certs issue {row.common_name}",
        "service": f"f2 certs service {row.common_name}",
    }.get(row.kind, "f2 certs server --host ...")
    if row.expired:
        return (
            f"WARNING: {row.kind} certificate {row.serial} of {row.common_name} expired on "
            f"{_when(row.not_after)}; renew it with `{renew}`"
        )
    if row.expires_within_30_days:
        days_left = (row.not_after - now).days
        return (
            f"WARNING: {row.kind} certificate {row.serial} of {row.common_name} expires on "
            f"{_when(row.not_after)} ({days_left} days left); renew it with `{renew}`"
        )
    return None


def _revoked_cell(row: CertInfo) -> str:
    if not row.revoked:
        return "no"
    return f"yes {_when(row.revoked_at)}" if row.revoked_at else "yes"


def _print_table(rows: list[CertInfo]) -> None:
    header = ("SERIAL", "MAC/CN", "KIND", "EXPIRES", "REVOKED")
    lines = [
        (
            row.serial,
            row.common_name,
            row.kind if row.origin == "issued" else f"{row.kind} ({row.origin})",
            _when(row.not_after) + (" (expired)" if row.expired else ""),
            _revoked_cell(row),
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in [header, *lines]) for column in range(len(header))]
    for line in [header, *lines]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


__all__ = ["certs_group"]
