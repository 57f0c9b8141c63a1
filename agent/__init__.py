"""chartwise.agent: the LangGraph graph, model backends, tool-call parsing, budgets, verifier."""
