"""Deleting a document: its vectors, its records, and its objects unless shared."""

from domain.documents import Document
from domain.errors import NotFoundError
from pipeline import artifacts
from pipeline.bootstrap import Services


def delete_document(services: Services, tenant: str, document_id: str) -> Document:
    """Remove the document from search and storage. Deleting twice is not an error; a
    document that never existed (or is another tenant's) is NotFoundError."""
    document = services.documents.get(tenant, document_id)
    if document is None:
        raise NotFoundError(f"no document {document_id}")
    services.vectors.delete_document(tenant, document_id)
    services.documents.mark_deleted(tenant, document_id)
    if services.documents.count_by_sha(tenant, document.sha256) == 0:
        keys = [document.object_key]
        if document.chunks_key:
            keys += [document.chunks_key,
                     artifacts.embeddings_key(document.chunks_key, services.embedder.model_name)]
        for key in keys:
            services.objects.delete_file(key)
    return document
