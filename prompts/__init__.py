"""chartwise.prompts: prompt templates as files (Jinja2, StrictUndefined), loaded by name."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files(__name__).joinpath(name).read_text("utf-8")),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


@lru_cache(maxsize=None)
def _template(name: str) -> jinja2.Template:
    if not name.endswith((".j2", ".md")):
        name = name + ".j2"
    return _ENV.get_template(name)


def render(name: str, **variables: object) -> str:
    """Render the prompt template ``name`` (``prompts/NAME.j2``); a missing variable is an error."""
    return _template(name).render(**variables).strip()
