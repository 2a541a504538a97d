"""The mutation checklist stays runnable as the code moves: each break's text is in its file exactly once and the
tests it names exist (the full run, `python tests/mutations/run.py`, takes half an hour; this takes a second)."""

from __future__ import annotations

import ast

from tests.conftest import REPO
from tests.mutations.run import CHECKLIST, load_checklist


def test_every_break_finds_its_text_once_and_names_real_tests():
    problems = []
    for mutation in load_checklist(CHECKLIST):
        path = REPO / mutation.file
        count = path.read_text().count(mutation.find) if path.is_file() else -1
        if count != 1:
            problems.append(f"{mutation.name}: `find` is {count} times in {mutation.file}")
        for test in mutation.tests:
            file, _, name = test.partition("::")
            source = REPO / file
            functions = (
                {n.name for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.FunctionDef)}
                if source.is_file()
                else set()
            )
            if name.split("[")[0] not in functions:
                problems.append(f"{mutation.name}: no test {test}")
    assert not problems, "\n".join(problems)
