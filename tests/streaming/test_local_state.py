"""Local table stores survive only a clean stop; after any other stop they are rebuilt from their
changelogs (the producer marks the clean stop when every record it sent is acknowledged)."""

from __future__ import annotations

from pathlib import Path

from oms_streams.streaming.local_state import mark_clean_stop, trust_or_rebuild


def a_worker_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "worker"
    for store in ("stock_positions-0.db", "orders-1.db"):
        (data_dir / "v1" / "tables" / store).mkdir(parents=True)
        (data_dir / "v1" / "tables" / store / "000001.sst").write_bytes(b"rows")
    return data_dir


def test_after_a_clean_stop_the_local_tables_are_kept_and_the_mark_is_consumed(tmp_path: Path) -> None:
    data_dir = a_worker_dir(tmp_path)
    mark_clean_stop(data_dir)

    assert trust_or_rebuild(data_dir) is False
    assert (data_dir / "v1" / "tables" / "orders-1.db" / "000001.sst").exists()
    # Until this run stops cleanly in turn, a crash must not find the old mark.
    assert trust_or_rebuild(data_dir) is True


def test_after_a_crash_the_local_tables_are_removed_for_a_restore_from_their_changelogs(
    tmp_path: Path,
) -> None:
    data_dir = a_worker_dir(tmp_path)

    assert trust_or_rebuild(data_dir) is True
    assert not (data_dir / "v1" / "tables").exists()
    assert data_dir.exists()  # only the table stores go


def test_a_first_start_has_nothing_to_rebuild(tmp_path: Path) -> None:
    assert trust_or_rebuild(tmp_path / "new") is False
    mark_clean_stop(tmp_path / "new")
    assert (tmp_path / "new" / "clean-stop").exists()
