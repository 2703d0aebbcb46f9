"""Renders one user's recommendation email from Jinja2 templates (HTML autoescaped, plain text not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from connectors.formats.recommendations import UserRecommendations
from hub.errors import RejectedError

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_HTML = DEFAULT_TEMPLATES / "recommendations.html.j2"
DEFAULT_TEXT = DEFAULT_TEMPLATES / "recommendations.txt.j2"


class RenderedEmail:
    """Subject, plain-text and HTML bodies of one message."""

    __slots__ = ("subject", "text", "html")

    def __init__(self, subject: str, text: str, html: str | None):
        self.subject, self.text, self.html = subject, text, html


class EmailTemplates:
    """The subject, text and HTML templates of one email destination, compiled once.

    StrictUndefined: a template naming a variable that is not there fails that user's message with
    `template_error` rather than mailing a blank; templates test optional columns with `is defined`.
    """

    def __init__(self, subject: str, text_path: Path, html_path: Path | None, variables: dict[str, Any]):
        self._html_env = self._environment(html_path, autoescape=True) if html_path else None
        self._text_env = self._environment(text_path, autoescape=False)
        self.subject = self._text_env.from_string(subject)
        self.text = self._text_env.get_template(text_path.name)
        self.html = self._html_env.get_template(html_path.name) if self._html_env and html_path else None
        self.variables = variables

    @staticmethod
    def _environment(path: Path, *, autoescape: bool) -> jinja2.Environment:
        # One folder per template: {% include %} / {% extends %} resolve next to it, then to the defaults.
        loader = jinja2.FileSystemLoader([str(path.parent), str(DEFAULT_TEMPLATES)])
        return jinja2.Environment(loader=loader, autoescape=autoescape, undefined=jinja2.StrictUndefined,
                                  keep_trailing_newline=True)

    def render(self, recs: UserRecommendations, items: list[dict[str, Any]]) -> RenderedEmail:
        context = {**self.variables, "user_id": recs.user_id, "email": recs.email, "items": items,
                   "attributes": recs.attributes, "job": recs.job, "run_id": recs.run_id}
        try:
            subject = " ".join(self.subject.render(context).split())  # a header: one line
            text = self.text.render(context)
            html = self.html.render(context) if self.html else None
        except jinja2.TemplateError as err:
            raise RejectedError("template_error", f"{type(err).__name__}: {err}") from None
        return RenderedEmail(subject, text, html)
