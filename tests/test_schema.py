"""The contract has one definition: data/README.md shows exactly what tailwise/schema.py says."""

from pathlib import Path

from tailwise.schema import TABLES, contract_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_data_readme_matches_schema() -> None:
    text = (ROOT / "data" / "README.md").read_text()
    block = text.split("<!-- contract:begin -->\n")[1].split("<!-- contract:end -->")[0]
    assert block == contract_markdown()


def test_required_columns() -> None:
    assert TABLES["users"].required == ["user_id"]
    assert TABLES["items"].required == ["item_id"]
    assert TABLES["events"].required == ["user_id", "item_id", "event_type", "timestamp"]
