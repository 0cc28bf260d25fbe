"""A vector index that sends each tenant to the index its route names."""
