"""chartwise.tools: retrieval over a patient's record (index, search, structured tools, literature)."""
