"""``conversa reembed``: fill the configured model's index from the stored chunks."""

from typing import Annotated

import typer


def reembed(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant (default: "
                                               "CONVERSA_DEFAULT_TENANT or 'default').")] = None,
) -> None:
    """Embed every served document again with the configured model (after changing
    CONVERSA_LOCAL_MODEL), from its stored chunks: nothing is parsed again."""
    from pipeline.bootstrap import bootstrap
    from pipeline.reembed import reembed as run_reembed
    from pipeline.settings import load_settings

    settings = load_settings()
    services = bootstrap(settings)
    report = run_reembed(services, tenant or settings.default_tenant)
    typer.echo(f"{services.embedder.model_name}: {report.documents} documents, "
               f"{report.chunks} chunks ({report.embedded} embedded now, {report.reused} "
               f"from stored embeddings; {report.cut} chunks longer than the model reads; "
               f"{report.superseded} replaced meanwhile)")
    for document_id, reason in report.skipped.items():
        typer.echo(f"skipped {document_id}: {reason}", err=True)
    if report.skipped:
        raise typer.Exit(1)
