"""The README as a newcomer meets it: short, the Space's front matter on top, the set-up's test
command the one CI runs, a command for every figure, and every Python example run by a test. And
the package: `pip install .` and `pip install -e .` (into a fresh virtual environment, offline) make
`import lyricgpt` work from another folder, with the data it reads, and the README's Python example
saved to a file prints there what the README says it prints.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BUNDLED_MODEL, ROOT, child_env, readme_example
from lyricgpt import load_model

README = (ROOT / "README.md").read_text(encoding="utf-8")
MAX_README_BYTES = 12 * 1024
# Every Python example in the README, by a string only it holds, and the test that runs it.
EXAMPLES = {
    "gradio_client": "test_app_api.py::test_the_readmes_api_examples_print_what_they_say",
    '"/alternatives"': "test_app_api.py::test_the_readmes_api_examples_print_what_they_say",
    "lyricgpt.BUNDLED_MODEL": "test_readme.py::test_the_readmes_python_example_prints_its_song_from_another_folder",
    "AutoModelForCausalLM": "test_export.py::test_the_readmes_transformers_example_runs_on_an_export",
    '"/lines"': "test_app_api.py::test_the_readmes_cowriting_example_prints_four_lines_then_two",
}


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_readme_is_short_and_the_spaces_card():
    assert len(README.encode("utf-8")) <= MAX_README_BYTES
    front_matter = re.match(r"---\n(.*?)\n---\n", README, re.S)
    assert front_matter and {"sdk: gradio", "app_file: app.py"} <= set(front_matter.group(1).splitlines())


def test_its_test_command_is_the_one_ci_runs():
    assert "pip install -r requirements-dev.txt && python -m pytest -q" in README
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("\npython -m pytest -q")


def test_every_figure_names_the_command_that_measures_it():
    rows = re.findall(r"^\|(?!---)(.*)\|$", README.split("## Figures", 1)[1], re.M)[1:]  # the header left out
    assert rows
    for row in rows:
        assert re.search(r"`python [^`]+`", row.split("|")[-1]), row


def test_every_python_example_is_run_by_a_test():
    for block in python_examples():
        assert any(marker in block for marker in EXAMPLES), (
            f"no test runs this README example (add one, and its marker to EXAMPLES: {EXAMPLES}):\n{block}")


# --- the package, installed -----------------------------------------------------------------------

def outside_env() -> dict[str, str]:
    """A child's environment that does not put the clone on the import path."""
    env = child_env()
    env.pop("PYTHONPATH")
    return env


def install(tmp: Path, editable: bool) -> Path:
    """The python of a fresh virtual environment (it sees the system's torch, not the clone) with the
    project installed from a copy of what its build needs, as `pip install .` or `pip install -e .`."""
    source = tmp / "LyricGPT"
    for part in ("pyproject.toml", "README.md", "lyricgpt", "assets/model"):
        (source / part).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / part, source / part)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", tmp / "venv"], check=True)
    python = tmp / "venv" / "bin" / "python"
    # The system's pip, in the new environment; nothing to download: no dependencies, no build isolation.
    run = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-build-isolation",
                          *(["-e"] if editable else []), str(source)], env=outside_env(), cwd=tmp,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    if not editable:
        shutil.rmtree(source)  # what was installed needs nothing of the copy
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    return install(tmp_path_factory.mktemp("installed"), editable=False)


@pytest.fixture(scope="module")
def installed_editable(tmp_path_factory) -> Path:
    return install(tmp_path_factory.mktemp("editable"), editable=True)


def run_in(folder: Path, python: Path | str, code: str) -> subprocess.CompletedProcess:
    folder.mkdir(exist_ok=True)
    script = folder / "example.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run([str(python), script.name], cwd=folder, env=outside_env(), capture_output=True, text=True,
                          timeout=300)


def data_files(package: Path) -> set[str]:
    """What a package holds besides its code: the files it reads at run time."""
    return {p.relative_to(package).as_posix() for p in package.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc")}


@pytest.mark.parametrize("how", ["installed", "installed_editable"])
def test_the_installed_package_is_the_one_imported_and_holds_what_it_reads(how, request, tmp_path):
    installed = request.getfixturevalue(how)
    code = ("import json, lyricgpt\n"
            "print(json.dumps([lyricgpt.__file__, lyricgpt.load_model(lyricgpt.BUNDLED_MODEL).val_bits_per_char]))\n")
    run = run_in(tmp_path, installed, code)
    assert run.returncode == 0, run.stderr
    where, bits = json.loads(run.stdout)
    package = Path(where).parent
    assert package.is_relative_to(installed.parent.parent.parent)  # this install's, not the clone on a path
    assert data_files(ROOT / "lyricgpt") <= data_files(package)
    assert bits == load_model(BUNDLED_MODEL).val_bits_per_char  # the bundled model, card and all


def test_the_readmes_python_example_prints_its_song_from_another_folder(installed, tmp_path):
    code = readme_example("lyricgpt.BUNDLED_MODEL")
    run = run_in(tmp_path / "elsewhere", installed, code)
    assert run.returncode == 0, run.stderr
    here = io.StringIO()
    with contextlib.redirect_stdout(here):
        exec(code, {})  # noqa: S102 - the README's own example, in this process: the same seed, the same song
    assert run.stdout == here.getvalue()
    assert 0 < len(run.stdout) <= 300 and "\n" in run.stdout.strip()  # a song of a few lines, up to 300 characters
