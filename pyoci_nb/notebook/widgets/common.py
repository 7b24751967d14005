"""What the widgets share: error and message lines in the notebook's colours."""

from __future__ import annotations

import html


def error_html(message: str) -> str:
    """One error line (escaped), with a warning sign."""
    return f'<div style="color:var(--jp-error-color1,#cf222e);font-size:12px">&#9888; {html.escape(message)}</div>'


def messages_html(messages: list[str]) -> str:
    """Validation messages (escaped), one a line with a warning sign; "" for none."""
    if not messages:
        return ""
    items = "".join(f"<div>&#9888; {html.escape(m)}</div>" for m in messages)
    return f'<div style="color:var(--jp-error-color1,#cf222e);font-size:12px">{items}</div>'
