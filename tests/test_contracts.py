"""Domains meet only through the contract modules `docs/contracts.md` lists.

Walks every import in the domain packages with `ast`: a domain may use another domain only
through that domain's `api` module (`auth.api`, `codes.api`), never its services, errors or
models; nobody imports `venues` or `payments`; `app` imports no domain at all (the factory
loads each `wiring` module by name).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOMAINS = ("auth", "codes", "venues", "payments")
CONTRACTS = {"auth": "auth.api", "codes": "codes.api"}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module an import statement in `path` names, absolute, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            # `from auth import service` names the module auth.service
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _bypasses(importer: str, module: str) -> bool:
    target = module.split(".")[0]
    if target not in DOMAINS or target == importer:
        return False
    contract = CONTRACTS.get(target)
    if contract is None:
        return True  # venues and payments offer nothing to other domains
    # `from auth import api` and `from auth.api import X` are the contract; `import auth`
    # alone names only the package, which holds nothing.
    return module != target and not (module == contract or module.startswith(contract + "."))


def cross_domain_violations(root: Path) -> list[str]:
    found = []
    for owner in ("app", *DOMAINS):
        for path in sorted((root / owner).rglob("*.py")):
            for line, module in _imports(path):
                if _bypasses(owner, module):
                    found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_domains_import_each_other_only_through_their_contract_modules() -> None:
    assert cross_domain_violations(REPO) == []


def test_the_walk_catches_an_import_that_reaches_past_a_contract(tmp_path: Path) -> None:
    # The checker itself must fail on the kinds of import the contract forbids.
    for owner in ("app", *DOMAINS):
        (tmp_path / owner).mkdir()
    (tmp_path / "venues" / "gate.py").write_text(
        "from auth.errors import IdentityRequired\n"
        "from codes import service as codes_service\n"
        "def f():\n    import payments.models\n"
        "from codes.api import verify_code\nfrom auth import api\n"
    )
    assert cross_domain_violations(tmp_path) == [
        "venues/gate.py:1 imports auth.errors",
        "venues/gate.py:1 imports auth.errors.IdentityRequired",
        "venues/gate.py:2 imports codes.service",
        "venues/gate.py:4 imports payments.models",
    ]


def test_contract_modules_export_what_they_import() -> None:
    import auth.api
    import codes.api

    for module in (auth.api, codes.api):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__} lists {name} but lacks it"


def _documented(section: str) -> set[str]:
    """Backticked names in the first column of the table under `## <section>` in contracts.md."""
    text = (REPO / "docs" / "contracts.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


def test_contracts_page_lists_exactly_what_the_contract_modules_export() -> None:
    import auth.api
    import codes.api

    assert _documented("Auth (`auth/api.py`)") == set(auth.api.__all__)
    assert _documented("Codes (`codes/api.py`)") == set(codes.api.__all__)
