"""The structural chunker, sized in each embedder's own tokens."""

import itertools
import random

import pytest

from adapters.memory.fakes import HashEmbedder
from adapters.onnx.embedder import OnnxEmbedder
from adapters.openai.embedder import OpenAIEmbedder
from domain.chunking import chunk_document
from domain.parsing import ParsedDocument, Section

WORDS = ["lighthouse", "keeper", "lamp", "wick", "oil", "storm", "coast", "ship", "rocks",
         "beacon", "fog", "horn", "tower", "supercalifragilistic", "interoperability",
         "électricité", "灯台", "well-known", "e.g.", "3.14"]


def prose(seed: int, paragraphs: int = 12) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(1, 8)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 40))]
            sentences.append(" ".join(words).capitalize() + rng.choice([".", "!", "?"]))
        out.append(" ".join(sentences))
    return "\n\n".join(out)


@pytest.fixture(scope="module", params=["hash", "onnx", "openai"])
def embedder(request):
    if request.param == "hash":
        return HashEmbedder(max_input_tokens=60)
    if request.param == "openai":  # only its offline tokenizer is used
        return OpenAIEmbedder("sk-test-not-used", dimension=256)
    return OnnxEmbedder()


def check_invariants(parsed: ParsedDocument, chunks, count, limit):
    text = parsed.text
    for chunk in chunks:
        assert chunk.text == text[chunk.start:chunk.end]
        assert count(chunk.text) <= limit
        assert chunk.text == chunk.text.strip()
        # never mid-word: a chunk starts and ends at whitespace or the text's ends
        assert chunk.start == 0 or text[chunk.start - 1].isspace()
        assert chunk.end == len(text) or text[chunk.end].isspace()
        assert chunk.page == parsed.page_at(chunk.start)
        assert chunk.section == parsed.section_at(chunk.start)
    # every word is in some chunk
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
    # a chunk never crosses a page or section start
    for edge in parsed.boundaries():
        assert not any(c.start < edge < c.end for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize("seed", range(6))
def test_chunks_fit_the_embedder_and_cover_the_text(embedder, seed):
    text = prose(seed)
    parsed = ParsedDocument("text/plain", text)
    limit = min(64, embedder.max_input_tokens)

    chunks = chunk_document("d", parsed, embedder.count_tokens, max_tokens=limit,
                            overlap_tokens=12)

    assert len(chunks) > 3
    check_invariants(parsed, chunks, embedder.count_tokens, limit)
    overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.start < a.end)
    assert overlapping >= len(chunks) // 2


def test_pages_and_sections_start_new_chunks_and_label_them(embedder):
    pages = [prose(1, 3), prose(2, 2), prose(3, 4)]
    text = "\n\n".join(pages)
    starts = tuple(itertools.accumulate([0] + [len(p) + 2 for p in pages[:-1]]))
    heading = starts[2] + pages[2].index("\n\n") + 2
    parsed = ParsedDocument("application/pdf", text, page_starts=starts,
                            sections=(Section(heading, "Later part"),))

    chunks = chunk_document("d", parsed, embedder.count_tokens, max_tokens=48,
                            overlap_tokens=8)

    check_invariants(parsed, chunks, embedder.count_tokens, 48)
    assert {c.page for c in chunks} == {1, 2, 3}
    assert any(c.start == heading for c in chunks)
    assert {c.section for c in chunks if c.start >= heading} == {"Later part"}


def test_a_paragraph_break_is_preferred_to_a_sentence_break():
    embedder = HashEmbedder(max_input_tokens=1000)
    first = "Alpha beta gamma delta. " * 4  # 16 words
    second = "Epsilon zeta eta theta. " * 4
    text = first.strip() + "\n\n" + second.strip()

    chunks = chunk_document("d", ParsedDocument("text/plain", text), embedder.count_tokens,
                            max_tokens=24, overlap_tokens=0)

    assert [c.text for c in chunks] == [first.strip(), second.strip()]


def test_a_word_longer_than_the_limit_is_cut_to_fit(embedder):
    blob = "QmFzZTY0" * 400  # one 3,200-character "word"
    parsed = ParsedDocument("text/plain", f"Before the blob. {blob} After the blob.")

    chunks = chunk_document("d", parsed, embedder.count_tokens, max_tokens=32,
                            overlap_tokens=4)

    assert all(embedder.count_tokens(c.text) <= 32 for c in chunks)
    assert "".join(c.text for c in chunks if "QmFz" in c.text and " " not in c.text) in blob
    assert chunks[-1].text.endswith("After the blob.")


def test_whitespace_only_text_has_no_chunks():
    assert chunk_document("d", ParsedDocument("text/plain", " \n\n \t"),
                          HashEmbedder().count_tokens, max_tokens=10, overlap_tokens=2) == []


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_bad_sizes_are_refused(size, overlap):
    with pytest.raises(ValueError, match="max_tokens"):
        chunk_document("d", ParsedDocument("text/plain", "x"), HashEmbedder().count_tokens,
                       max_tokens=size, overlap_tokens=overlap)
