"""The KeywordExtractor contract, run against every adapter of the port (plus YAKE's own)."""

from collections.abc import Iterator

import pytest

from adapters.memory.fakes import FrequencyKeywords
from adapters.openai.keywords import OpenAIKeywords
from adapters.ports import KeywordExtractor
from adapters.yake.keywords import MAX_KEYWORD_CHARS, YakeKeywords
from tests.support.fake_openai import FakeOpenAI

TEXT = """
LanceDB stores vectors on local disk. A LanceDB table keeps one row per vector, and LanceDB
answers vector search queries with cosine distance. Compaction merges small fragments of the
LanceDB table. Vector search over embeddings finds passages by meaning, while keyword search
finds exact words. Embeddings come from a small transformer model running on ONNX Runtime.
Search quality depends on the embeddings, and LanceDB makes vector search fast.
"""


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module", params=["frequency", "yake", "openai"])
def extractor(request: pytest.FixtureRequest) -> KeywordExtractor:
    if request.param == "frequency":
        return FrequencyKeywords()
    if request.param == "openai":  # through the SDK against the fake OpenAI server
        fake: FakeOpenAI = request.getfixturevalue("fake_openai")
        return OpenAIKeywords(fake.api_key, base_url=fake.base_url)
    return YakeKeywords()


def test_implements_the_port(extractor: KeywordExtractor) -> None:
    assert isinstance(extractor, KeywordExtractor)


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n"])
def test_empty_text_gives_no_keywords(extractor: KeywordExtractor, text: str) -> None:
    assert extractor.generate_keywords(text) == []


def test_keywords_are_lower_case_unique_and_capped(extractor: KeywordExtractor) -> None:
    for cap in (1, 3, 10):
        keywords = extractor.generate_keywords(TEXT, max_keywords=cap)
        assert 0 < len(keywords) <= cap
        assert all(k == k.lower() and k.strip() == k and k for k in keywords)
        assert len(set(keywords)) == len(keywords)


def test_best_first_a_smaller_cap_is_a_prefix(extractor: KeywordExtractor) -> None:
    ten = extractor.generate_keywords(TEXT, max_keywords=10)
    assert extractor.generate_keywords(TEXT, max_keywords=3) == ten[:3]
    assert extractor.generate_keywords(TEXT) == ten  # the default is 10


def test_the_dominant_term_ranks_near_the_top(extractor: KeywordExtractor) -> None:
    assert "lancedb" in extractor.generate_keywords(TEXT, max_keywords=3)


def test_case_variants_are_one_keyword(extractor: KeywordExtractor) -> None:
    text = "Python python PYTHON pythons. Python is a language; python programs run anywhere."
    keywords = extractor.generate_keywords(text, max_keywords=10)
    assert keywords.count("python") == 1
    assert keywords[0] == "python"


def test_same_text_same_keywords(extractor: KeywordExtractor) -> None:
    assert extractor.generate_keywords(TEXT) == extractor.generate_keywords(TEXT)


# -- YAKE's own promises ----------------------------------------------------------------------


def test_yake_keywords_are_short_phrases() -> None:
    garbage = "x" * 100
    text = f"{garbage} {garbage} appears here. {garbage} again with {garbage} and databases."
    keywords = YakeKeywords().generate_keywords(text + TEXT, max_keywords=20)
    assert keywords
    assert all(len(k) <= MAX_KEYWORD_CHARS for k in keywords)
    assert all(1 <= len(k.split()) <= 2 for k in keywords)
    assert garbage not in keywords


def test_yake_is_lazy_and_respects_ngram_size() -> None:
    extractor = YakeKeywords(max_ngram=1)
    assert extractor._extractors == {}
    keywords = extractor.generate_keywords(TEXT, max_keywords=5)
    assert keywords
    assert all(len(k.split()) == 1 for k in keywords)
    assert extractor.generate_keywords(TEXT, max_keywords=0) == []
