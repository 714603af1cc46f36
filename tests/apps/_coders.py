"""A scripted model for every role of ``smesh code`` (tests only)."""

from __future__ import annotations

import re
from typing import Any

from smesh.backends.base import Request

INTERFACES = {
    "counting": "def word_count(text: str) -> int:\n    '''Number of words in text.'''",
    "longest": "def longest_word(text: str) -> str:\n    '''The longest word ('' if none).'''",
    "vowels": "def vowel_count(text: str) -> int:\n    '''Number of vowels in text.'''",
}
GOOD = {
    "counting": "def word_count(text: str) -> int:\n    return len(text.split())\n",
    "longest": (
        "def longest_word(text: str) -> str:\n    return max(text.split(), key=len, default='')\n"
    ),
    "vowels": (
        "def vowel_count(text: str) -> int:\n    return sum(c in 'aeiou' for c in text.lower())\n"
    ),
}
BAD = {
    "counting": "def word_count(text: str) -> int:\n    return 0\n",
    "longest": "def longest_word(text: str) -> str:\n    return ''\n",
    "vowels": "def vowel_count(text: str) -> int:\n    return -1\n",
}
TESTS = {
    "counting": (
        "from textstats.counting import word_count\n\n"
        "def test_words():\n    assert word_count('a b c') == 3\n\n"
        "def test_empty():\n    assert word_count('') == 0\n"
    ),
    "longest": (
        "from textstats.longest import longest_word\n\n"
        "def test_longest():\n    assert longest_word('a bbb cc') == 'bbb'\n"
    ),
    "vowels": (
        "from textstats.vowels import vowel_count\n\n"
        "def test_vowels():\n    assert vowel_count('banana') == 3\n"
    ),
}


def fence(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\n"


class Team:
    """A scripted model for every role; ``bad_coders`` write wrong code until told why."""

    def __init__(
        self,
        modules: tuple[str, ...] = ("counting", "longest"),
        *,
        bad_coders: tuple[str, ...] = (),
        stubborn: bool = False,
        picky_reviews: int = 0,
    ) -> None:
        self.modules = modules
        self.bad_coders = bad_coders
        self.stubborn = stubborn
        self.picky_reviews = picky_reviews
        self.prompts: list[tuple[str, str]] = []

    def module_of(self, prompt: str) -> str:
        found = re.search(r"module textstats/(\w+)\.py", prompt)
        assert found is not None, prompt
        return found.group(1)

    def __call__(self, request: Request) -> Any:
        agent = request.agent or ""
        prompt = request.messages[-1].content
        self.prompts.append((agent, prompt))
        if agent == "architect":
            return {
                "package": "TextStats",
                "modules": [
                    {"name": m, "purpose": f"{m} of text", "interface": INTERFACES[m]}
                    for m in self.modules
                ],
            }
        module = self.module_of(prompt)
        if agent == "tester":
            return fence(TESTS[module])
        if agent == "reviewer":
            if self.picky_reviews > 0:
                self.picky_reviews -= 1
                return {"verdict": "request_changes", "reason": "add a docstring"}
            return {"verdict": "approve", "reason": "implements the interface"}
        retried = "rejected" in prompt
        if agent in self.bad_coders and (self.stubborn or not retried):
            return fence(BAD[module])
        return fence(GOOD[module])
