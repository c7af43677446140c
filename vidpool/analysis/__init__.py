"""Analysis tools: how much detail pooling methods keep (similarity)."""
