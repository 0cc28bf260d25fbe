"""LanceDB: the embedded VectorIndex of the local stack."""
