"""Model backends: one interface over transformers (MedGemma) and OpenAI-compatible servers."""
