"""The DocumentParser: PDF, DOCX, HTML, Markdown and text, detected from the bytes."""
