"""chartwise.fhir: sources, parsing with quarantine, references, clinical facts, timeline.

This folder sits at the repository root under the name ``fhir``, which is also the top-level
package of ``fhir.resources``.  When the repository root is on ``sys.path`` (``python -m pytest``
from the root), ``import fhir`` may land here; extending ``__path__`` lets ``fhir.resources``
still be found in site-packages.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
