"""Outbound HTTP: fetching documents by URL and calling producers back, behind one address guard."""
