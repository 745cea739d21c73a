"""The ways to run the suite agree: the Dockerfile, .ci/run and the README all go through `make`."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def _make_recipe(target: str) -> list[str]:
    text = (REPO / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)", text, re.MULTILINE)
    assert match, f"Makefile has no recipe for {target}"
    return [line.strip() for line in match.group(1).splitlines()]


def test_dockerfile_builds_with_make_setup_and_runs_make_test():
    instructions = _dockerfile_instructions()
    runs = [arg for op, arg in instructions if op == "RUN"]
    assert "make setup system" in runs  # the same install steps `make test` depends on
    assert ("CMD", '["make", "test"]') in instructions
    # the whole suite, on every core and one more worker (pytest-xdist, a file's tests on one worker)
    assert _make_recipe("test")[-1] == \
        "$(BIN)/python -m pytest -n $(TEST_WORKERS) --maxprocesses 5 --dist loadfile --durations=15"
    assert re.search(r"^test:(.*)$", (REPO / "Makefile").read_text(), re.MULTILINE).group(1).split() == ["setup", "system"]


def test_dockerfile_python_matches_the_project():
    base = next(arg for op, arg in _dockerfile_instructions() if op == "FROM")
    version = re.search(r"python:(\d+\.\d+)", base).group(1)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={version}"


def test_ci_and_readme_use_the_two_commands():
    assert "make test" in (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
