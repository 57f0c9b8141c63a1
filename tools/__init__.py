"""chartwise.tools: retrieval over a patient's record (index, search, structured tools, literature).

The agent's entry points::

    from chartwise.tools import build_evidence, manifest, search_facts, latest, series, \
        active_medications, problem_list, get_resource, search_notes, search_literature, tool_specs

Every tool is read-only over the record and returns evidence items (citation, text, date, tokens).
"""
from .config import IndexSettings, default_index_dir
from .evidence import DEFAULT_BUDGET, EvidencePack, build_evidence
from .index import PatientIndex, configure, get_store, patient_index
from .literature import Paper, literature_index, load_corpus
from .question import QuestionAnalysis, analyze, find_dates
from .structured import (AsOfArgs, ConceptArgs, EvidenceItem, GetResourceArgs, ManifestResult, SearchFactsArgs,
                         SearchLiteratureArgs, SearchNotesArgs, SeriesArgs, TOOLS, ToolResult, active_medications,
                         get_resource, latest, manifest, problem_list, search_facts, search_literature, search_notes,
                         series, tool_specs)

__all__ = [
    "IndexSettings", "default_index_dir", "DEFAULT_BUDGET", "EvidencePack", "build_evidence", "PatientIndex",
    "configure", "get_store", "patient_index", "Paper", "literature_index", "load_corpus", "QuestionAnalysis",
    "analyze", "find_dates", "AsOfArgs", "ConceptArgs", "EvidenceItem", "GetResourceArgs", "ManifestResult",
    "SearchFactsArgs", "SearchLiteratureArgs", "SearchNotesArgs", "SeriesArgs", "TOOLS", "ToolResult",
    "active_medications", "get_resource", "latest", "manifest", "problem_list", "search_facts",
    "search_literature", "search_notes", "series", "tool_specs",
]
