"""Pinecone: the VectorIndex on the Pinecone SDK."""
