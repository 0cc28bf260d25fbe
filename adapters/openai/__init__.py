"""OpenAI: the Embedder and KeywordExtractor, their shared caller and offline token counts."""
