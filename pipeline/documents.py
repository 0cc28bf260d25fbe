"""Deleting a document: its vectors, its records, and its objects unless shared."""

from domain.documents import Document
from domain.errors import NotFoundError
from pipeline import artifacts
from pipeline.bootstrap import Services


def delete_document(services: Services, tenant: str, document_id: str) -> Document:
    """Remove the document from search and storage. Deleting twice is not an error; a
    document that never existed (or is another tenant's) is NotFoundError.

    The record is marked deleted first, so search (which skips deleted documents) stops
    returning it at once; then every version's vectors go, then the stored objects no live
    document shares. A job of the document still in flight finishes without bringing it back
    (see ``stages._finish``). Each step is idempotent: a failure midway is retried by deleting
    again.
    """
    document = services.documents.get(tenant, document_id)
    if document is None:
        raise NotFoundError(f"no document {document_id}")
    services.documents.mark_deleted(tenant, document_id)
    services.vectors.delete_document(tenant, document_id)
    drop_unshared_content(services, document)
    return document


def drop_unshared_content(services: Services, version: Document) -> None:
    """Delete a version's content object, chunks and embeddings unless a live document of the
    tenant has the same content."""
    if services.documents.count_by_sha(version.tenant, version.sha256) > 0:
        return
    keys = [version.object_key]
    if version.chunks_key:
        keys += [version.chunks_key,
                 artifacts.embeddings_key(version.chunks_key, services.embedder.model_name)]
    for key in keys:
        services.objects.delete_file(key)
