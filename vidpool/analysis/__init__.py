"""Analysis tools: how much detail pooling methods keep (similarity), model cost (complexity) and the
significance of two runs' difference (mcnemar)."""
