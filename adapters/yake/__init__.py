"""The local KeywordExtractor: YAKE."""
