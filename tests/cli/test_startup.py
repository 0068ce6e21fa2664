"""The command line starts light: ``--version``, ``--help`` and ``models`` must not wait
for FAISS, SciPy, PIL, torch or the web stack, which only the commands that use them load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("lookalike.collection", "faiss", "scipy", "PIL", "torch", "fastapi", "numpy")


def loaded_after(statement: str) -> set[str]:
    """The modules of ``HEAVY`` loaded by ``statement`` in a fresh interpreter."""
    probe = (f"import sys; {statement}; import json; "
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_module() -> None:
    assert loaded_after("import lookalike.cli") == set()


@pytest.mark.slow
def test_importing_the_package_loads_nothing_until_a_name_is_used() -> None:
    assert loaded_after("import lookalike; lookalike.__version__") == set()
    assert "lookalike.collection" in loaded_after("from lookalike import Collection")
