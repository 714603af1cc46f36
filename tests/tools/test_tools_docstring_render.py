"""The docstring reader and the rendering of results for the model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smesh.tools._docstring import parse_docstring
from smesh.tools.execute import render_result


def test_google_docstrings() -> None:
    doc = """Fetch a page.

        Follows redirects.

        Args:
            url (str): the address.
            retries: how often to try;
                0 means once.
            *extra: ignored.

        Returns:
            The body.

        Raises:
            ValueError: never.
    """
    description, args = parse_docstring(doc)
    assert description == "Fetch a page.\n\nFollows redirects."
    assert args == {
        "url": "the address.",
        "retries": "how often to try; 0 means once.",
        "extra": "ignored.",
    }
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("One line.") == ("One line.", {})
    # a "Raises:" entry is not mistaken for an argument
    assert "ValueError" not in parse_docstring(doc)[1]


@settings(max_examples=100, derandomize=True, deadline=None)
@given(text=st.text(min_size=0, max_size=3000), cap=st.integers(min_value=1, max_value=2000))
def test_rendered_results_respect_the_cap_on_character_boundaries(text: str, cap: int) -> None:
    out = render_result(text, cap)
    size = len(text.encode())
    if size <= cap:
        assert out == text
    else:
        body, _, note = out.rpartition("\n[truncated: ")
        assert len(body.encode()) <= cap
        assert text.startswith(body)  # a prefix: nothing invented, no broken character
        assert note.startswith(f"the result was {size:,} bytes")
