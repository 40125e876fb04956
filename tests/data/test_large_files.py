"""Large files (issue 16, item 7): read as a stream with progress, stopped at a row or size
limit the lab sets, with memory bounded by what is kept rather than by the file."""

from __future__ import annotations

import gzip
import io
import random
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

from nas_core.data.reading import DataFileError, ReadLimits, read_raw, read_stream
from nas_core.data.store import DatasetStore, import_dataset

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def write_table(path: Path, n: int, length: int = 100, sep: str = ",") -> Path:
    rng = random.Random(n)
    with open(path, "w") as out:
        out.write(f"sequence{sep}label\n")
        for i in range(n):
            out.write("".join(rng.choices(AMINO, k=length)) + f"{sep}{i % 2}\n")
    return path


def test_a_file_past_the_row_limit_stops_early_with_bounded_memory(tmp_path, monkeypatch):
    big = write_table(tmp_path / "big.csv", 300_000)  # about 31 MB
    assert big.stat().st_size > 29 * 2**20
    monkeypatch.setenv("ESM_NAS_MAX_ROWS", "1000")
    tracemalloc.start()
    with pytest.raises(DataFileError, match=r"more than 1,000 sequences.*ESM_NAS_MAX_ROWS"):
        read_raw(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.0f} MB while refusing a 31 MB file"


@pytest.mark.parametrize("fmt", ["fasta", "tsv", "xlsx", "csv.gz"])
def test_the_row_limit_holds_in_every_format(tmp_path, fmt):
    rows = [("MKV" + "A" * (i % 7) + "LG", str(i % 2)) for i in range(30)]
    path = tmp_path / f"rows.{fmt}"
    frame = pd.DataFrame(rows, columns=["sequence", "label"])
    if fmt == "fasta":
        path.write_text("".join(f">p{i} label={lab}\n{seq}\n" for i, (seq, lab) in
                                enumerate(rows)))
    elif fmt == "xlsx":
        frame.to_excel(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    assert len(read_raw(path, limits=ReadLimits(max_rows=30)).frame) == 30
    with pytest.raises(DataFileError, match="more than 29 sequences"):
        read_raw(path, limits=ReadLimits(max_rows=29))


def test_a_plain_file_past_the_size_limit_is_refused(tmp_path):
    big = write_table(tmp_path / "big.csv", 30_000)  # about 3 MB
    with pytest.raises(DataFileError, match=r"big.csv: holds more than 1 MB.*"
                                            "ESM_NAS_MAX_UPLOAD_MB"):
        read_raw(big, limits=ReadLimits(max_mb=1))


def test_progress_moves_from_start_to_end_and_rows_are_all_read(tmp_path):
    path = write_table(tmp_path / "t.csv", 40_000)  # several reads of 1 MB
    seen: list[float] = []
    raw = read_raw(path, progress=lambda message, fraction: seen.append(fraction))
    assert len(raw.frame) == 40_000
    assert raw.frame["where"].iloc[-1] == "row 40001"  # row numbers survive the chunks
    assert seen == sorted(seen) and len(seen) >= 4 and seen[-1] == 1.0 and seen[0] < 0.5


def test_a_wrong_byte_deep_in_the_file_is_named_with_its_position(tmp_path):
    path = write_table(tmp_path / "t.csv", 3_000)  # about 300 kB, past the first chunks
    data = path.read_bytes()
    at = len(data) - 50
    path.write_bytes(data[:at] + b"\xe9" + data[at + 1:])
    with pytest.raises(DataFileError, match=rf"not UTF-8 text \(byte 0xe9 at position {at}\)"):
        read_raw(path)


def test_header_only_and_bad_limits_say_what_is_wrong(tmp_path, monkeypatch):
    path = tmp_path / "h.csv"
    path.write_text("sequence,label\n")
    with pytest.raises(DataFileError, match="header but no rows"):
        read_raw(path)
    monkeypatch.setenv("ESM_NAS_MAX_ROWS", "lots")
    with pytest.raises(DataFileError, match="ESM_NAS_MAX_ROWS='lots' is not a number"):
        read_raw(path)
    monkeypatch.setenv("ESM_NAS_MAX_ROWS", "0")
    with pytest.raises(DataFileError, match="ESM_NAS_MAX_ROWS must be positive"):
        read_raw(path)


def test_an_open_upload_is_read_as_a_stream_and_imported_with_progress(tmp_path):
    path = write_table(tmp_path / "upload.csv", 400, length=40)
    data = path.read_bytes()
    assert read_stream(io.BytesIO(data), "upload.csv").frame.equals(read_raw(path).frame)
    stages: list[str] = []
    outcome = import_dataset(io.BytesIO(data), name="upload.csv", store=DatasetStore(tmp_path),
                             progress=lambda message, fraction: stages.append(message))
    assert outcome.ok, outcome.result.problems
    assert stages[0] == "reading upload.csv" and "checking 400 rows" in stages
    assert stages.index("checking 400 rows") < len(stages) - 1  # then the split
