"""Deleting a document: it serves nothing at once, then its vectors and unshared content go."""

from domain.documents import Document
from pipeline import versions
from pipeline.bootstrap import Services


def delete_document(services: Services, tenant: str, document_id: str) -> Document:
    """Remove the document from search and storage; returns the record as it was. Deleting
    twice is not an error; a document that never existed (or is another tenant's) is
    NotFoundError.

    The record is marked deleted first, serving nothing, so search stops returning it at
    once, and every job of the document created before now is obsolete: one still in flight
    finishes without bringing it back and removes what it wrote. Then every version's vectors
    go (those of a job that began after the delete stay), and the content no served version
    or holding claim of the tenant uses (``pipeline.versions``). Each step is idempotent: a
    failure midway is repaired by deleting again.
    """
    return versions.delete(services, tenant, document_id)
