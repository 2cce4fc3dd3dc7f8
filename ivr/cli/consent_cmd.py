"""``arspay consent``: check the consent chain, hand out checkpoints and the public key,
seal the records of an upgraded database (docs/consent.md).

These commands need the consent evidence key file (``consent.key_file``), as the
engine does; they print no key material and no card data.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ivr.cli.app import app, emit, with_services
from ivr.cli.evidence import (
    CHECKPOINT_OPTION,
    OUT_OPTION,
    document,
    read_checkpoints,
    report,
    saved_option,
    write_document,
)
from ivr.consent.evidence import make_checkpoint
from ivr.consent.keys import checkpoint_dir
from ivr.errors import IntegrityViolation
from ivr.wiring import Services

consent_app = typer.Typer(help="Consent evidence.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")


@consent_app.command("verify")
def verify(
    ctx: typer.Context,
    checkpoint: list[Path] | None = CHECKPOINT_OPTION,
    saved: bool = saved_option("consent.checkpoint_dir"),
) -> None:
    """Check every consent record's hash and MAC, and the chain against each checkpoint
    (rewritten, inserted and deleted records, also the newest ones); exit 1 on any
    problem, one line each, 2 if it cannot be checked."""

    async def body(s: Services) -> None:
        given, refused = read_checkpoints(checkpoint)
        result = await s.consent.verify(given, saved=saved)
        problems = refused + result.lines()
        ok = not problems
        if ok:
            if result.sealed_through is None:
                keyed = "nothing sealed yet"
            elif result.sealed_through:
                keyed = f"keyed MACs after seq {result.sealed_through}"
            else:
                keyed = "every record keyed"
            summary = (
                f"consent chain intact: {result.records} record(s), head seq {result.head_seq} "
                f"({keyed}); consistent with {result.checkpoints} checkpoint(s)"
            )
        else:
            summary = f"consent chain TAMPERED or unverifiable: {len(problems)} problem(s)"
        report(ctx, ok=ok, summary=summary, problems=problems, notes=result.notes,
               data={"records": result.records, "head_seq": result.head_seq,
                     "sealed_through": result.sealed_through,
                     "checkpoints": result.checkpoints})  # fmt: skip

    with_services(ctx, body)


@consent_app.command("checkpoint")
def checkpoint(ctx: typer.Context, out: Path | None = OUT_OPTION) -> None:
    """Verify the chain, then sign a checkpoint of its head (sequence number, head MAC,
    count, time) for the merchant or operator to keep: JSON to --out or stdout (a copy
    goes to consent.checkpoint_dir). Exit 1, signing nothing, if the chain does not
    verify."""

    async def body(s: Services) -> None:
        saved = checkpoint_dir(s.settings)
        try:
            cp, _ = await make_checkpoint(s.consent)
        except IntegrityViolation as exc:
            typer.echo(f"problem: {exc.message}", err=True)
            raise typer.Exit(1) from None
        write_document(cp.to_json(), out)
        try:
            saved.save(cp)
        except OSError as exc:
            typer.echo(f"warning: not kept in {saved.path} ({exc.strerror})", err=True)
        if out is not None:
            typer.echo(f"checkpoint of seq {cp.seq} ({cp.count} record(s)) written to {out}")

    with_services(ctx, body)


@consent_app.command("public-key")
def public_key(ctx: typer.Context, out: Path | None = OUT_OPTION) -> None:
    """The Ed25519 public key that checks this deployment's checkpoints and export
    attestations (JSON: key id, base64, PEM), for merchants and auditors to keep."""

    async def body(s: Services) -> None:
        await s.consent.seal()  # the key exists once the chain is sealed
        doc = s.consent.keys.load(create=False).public_key_document()
        write_document(document(doc), out)

    with_services(ctx, body)


@consent_app.command("seal")
def seal(
    ctx: typer.Context,
    acknowledge_broken: bool = typer.Option(
        False,
        "--acknowledge-broken",
        help="seal the records from before keyed MACs even though they do not verify "
        "(after an investigation; the problem is kept in the seal)",
    ),
) -> None:
    """Seal the consent records written before keyed MACs (done by the engine when it
    starts after an upgrade; idempotent) and show the seal."""

    async def body(s: Services) -> None:
        info = await s.consent.seal(acknowledge_broken=acknowledge_broken)
        emit(ctx, "Consent seal", [{
            "sealed_now": info.created, "records_before_keyed_macs": info.sealed_through,
            "key_id": info.key_id, "sealed_at": info.created_at, "note": info.note,
        }])  # fmt: skip

    with_services(ctx, body)
