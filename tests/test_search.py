"""``staticreg search`` and ``staticreg index`` on a tree."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from gen import synthetic

from staticreg import paths
from staticreg.cli import cli
from staticreg.store import DirectoryStore


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _tree(root: Path) -> DirectoryStore:
    store = DirectoryStore(str(root))
    synthetic.repository(store, "web/server", 2, "Serves HTTP pages")
    synthetic.repository(store, "tools/cli", 1, "Command line tools")
    synthetic.catalog_of(store, ["web/server", "tools/cli"])
    return store


def test_search_prints_matches_by_name_or_description(tmp_path: Path) -> None:
    _tree(tmp_path / "reg")  # never indexed: read from the tree itself
    code, out, _ = run("search", "--root", str(tmp_path / "reg"), "http")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TAGS", "UPDATED", "DESCRIPTION"]
    assert lines[1].split()[:2] == ["web/server", "2"]
    assert lines[1].endswith("Serves HTTP pages") and len(lines) == 2

    assert run("index", "--root", str(tmp_path / "reg"))[0] == 0
    code, out, _ = run("search", "--root", str(tmp_path / "reg"), "--json", "TOOLS")
    assert code == 0
    assert [e["name"] for e in json.loads(out)] == ["tools/cli"]
    code, out, err = run("search", "--root", str(tmp_path / "reg"), "nothing")
    assert code == 0 and out == "" and "no repository matches" in err


LONG = "x" * 250 + " needle"


def test_search_matches_the_whole_of_a_long_description(tmp_path: Path) -> None:
    store = _tree(tmp_path / "reg")
    synthetic.repository(store, "team/long", 1, LONG)
    synthetic.catalog_of(store, ["web/server", "tools/cli", "team/long"])
    root = str(tmp_path / "reg")
    for indexed in (False, True):  # read from the tree, then from search.json
        if indexed:
            assert run("index", "--root", root)[0] == 0
        code, out, _ = run("search", "--root", root, "NEEDLE")
        assert code == 0
        name, _, _, description = out.splitlines()[1].split(maxsplit=3)
        assert name == "team/long"
        assert description == "x" * 199 + "\u2026"  # the table shows a line
        code, out, _ = run("search", "--root", root, "--json", "needle")
        assert [e["description"] for e in json.loads(out)] == [LONG]


def test_index_builds_the_site_and_records_the_base_url(tmp_path: Path) -> None:
    _tree(tmp_path / "reg")
    code, _, err = run(
        "index",
        "--root",
        str(tmp_path / "reg"),
        "--base-url",
        "https://registry.example.com/",
    )
    assert code == 0 and "2 repositories read" in err
    home = (tmp_path / "reg" / paths.site_home(1)).read_text()
    assert 'data-registry-host="registry.example.com"' in home
    assert (tmp_path / "reg" / paths.search_result("web~se")).is_file()
    assert (tmp_path / "reg" / "site/r/web/server/index.html").stat().st_mode & 0o004


def test_index_refuses_a_folder_that_is_not_a_tree(tmp_path: Path) -> None:
    code, _, err = run("index", "--root", str(tmp_path / "nothing"))
    assert code == 1 and "not a staticreg tree" in err
    assert not (tmp_path / "nothing").exists()


def test_index_redoes_what_changed_and_force_redoes_everything(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    store = _tree(root)
    assert run("index", "--root", str(root))[0] == 0
    page = root / paths.site_repository("tools/cli")
    page.write_text("damaged by hand")
    synthetic.repository(store, "tools/cli", 2, "Command line tools, two tags")

    code, _, err = run("index", "--root", str(root), "-v")
    assert code == 0 and "1 repositories read, 1 unchanged" in err
    assert "two tags" in page.read_text()

    page.write_text("damaged by hand")
    assert run("index", "--root", str(root))[0] == 0  # its record did not change
    assert page.read_text() == "damaged by hand"
    code, _, err = run("index", "--root", str(root), "--force", "-v")
    assert code == 0 and "2 repositories read, 0 unchanged" in err
    assert "two tags" in page.read_text()
