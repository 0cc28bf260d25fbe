"""Index targets as `conversa reindex --to` takes them."""

import pytest

from domain.errors import PermanentError
from domain.indexes import IndexTarget, parse_target


def test_targets_name_a_backend_a_place_and_maybe_a_table_or_namespace() -> None:
    assert parse_target("lancedb:/srv/vectors") == IndexTarget(
        backend="lancedb", location="/srv/vectors")
    pinecone = parse_target("pinecone:https://idx-1.svc.pinecone.io#acme-v2")
    assert pinecone == IndexTarget(backend="pinecone",
                                   location="https://idx-1.svc.pinecone.io", name="acme-v2")
    assert pinecone.name_for("acme") == "acme-v2"
    assert parse_target("lancedb:/srv/vectors").name_for("acme") == "acme"
    assert parse_target(pinecone.spec) == pinecone


@pytest.mark.parametrize("spec", ["", "lancedb", "lancedb:", "chroma:/x", "pinecone:#ns",
                                  "lancedb:/x#a#b"])
def test_anything_else_is_refused_with_the_forms_it_takes(spec: str) -> None:
    with pytest.raises(PermanentError, match=r"lancedb:<folder>|table or namespace"):
        parse_target(spec)
