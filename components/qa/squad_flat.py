"""Reading Parquet files of flat question records, row by row (for `squad_json`).

`squad_json.parse_squad_file` reads a file named `*.parquet` through `parquet_records`
and validates each record as a question (`squad_json` documents the record's fields and
the `datasets` layout); this module only turns rows into Python dicts, without SQuAD
knowledge, so that it imports nothing of `squad_json`.

- Local paths are opened by pyarrow; others (gs://, ram://...) through
  `tf.io.gfile.GFile` as a file object, so reading a local file does not import
  TensorFlow.
- Rows are converted a batch at a time (`RecordBatch.to_pylist`, at most `BATCH_ROWS`
  rows, row group after row group), never the whole file into memory or pandas, and only
  the columns asked for are read.
- Parquet compresses its column chunks itself (snappy, gzip, zstd...: pyarrow
  decompresses them); a gzip-compressed `*.parquet.gz` file is not Parquet here.
- A null value is left out of its record (it counts as a missing field).
- Rows are numbered from 0, as `datasets` (`dataset[N]`), pandas (`iloc`) and
  `pyarrow.Table.slice` number them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any

BATCH_ROWS = 1024


class ParquetError(ValueError):
    """The whole file cannot be read as records (the message does not name the file)."""


def parquet_records(
    path: str, fields: Sequence[str], required: Sequence[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, record) for every row of a Parquet file, in file order.

    Args:
      path: the file (local, or any `tf.io.gfile` URL).
      fields: the columns to read, those the file has (others are not read).
      required: the columns the file must have.

    Raises:
      ParquetError: the file cannot be read or is not Parquet, lacks a required column
        (the first missing is named), or has no rows.
    """
    with contextlib.ExitStack() as stack:
        parquet, errors = _open(path, stack)
        columns = parquet.schema_arrow.names
        missing = [c for c in required if c not in columns]
        if missing:
            raise ParquetError(f"is not a SQuAD Parquet file: column {missing[0]!r} is missing "
                               f"(columns: {', '.join(columns)})")
        if parquet.metadata.num_rows == 0:
            raise ParquetError("is empty (no rows)")
        batches = parquet.iter_batches(batch_size=BATCH_ROWS,
                                       columns=[c for c in fields if c in columns])
        index = 0
        while True:
            try:
                rows = next(batches).to_pylist()
            except StopIteration:
                return
            except errors as e:
                raise _unreadable(e) from e
            for row in rows:
                yield index, {k: v for k, v in row.items() if v is not None}
                index += 1


def _open(path: str, stack: contextlib.ExitStack) -> tuple[Any, tuple[type[Exception], ...]]:
    """A `pyarrow.parquet.ParquetFile` of `path` (closed with `stack`) and the errors that
    reading it may raise."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    errors: tuple[type[Exception], ...] = (pa.ArrowException, OSError, UnicodeDecodeError)
    try:
        if "://" not in path:
            source: Any = path
        else:
            import tensorflow as tf

            errors += (tf.errors.OpError,)
            source = _GFileReader(stack.enter_context(tf.io.gfile.GFile(path, "rb")))
        parquet = pq.ParquetFile(source)
    except errors as e:
        raise _unreadable(e) from e
    stack.callback(parquet.close)
    return parquet, errors


def _unreadable(error: Exception) -> ParquetError:
    return ParquetError(f"cannot be read as Parquet: {str(error) or type(error).__name__}")


class _GFileReader(io.RawIOBase):
    """A `tf.io.gfile.GFile` as the seekable binary file object pyarrow reads (a GFile
    has no `closed`, which pyarrow checks)."""

    def __init__(self, gfile: Any):
        super().__init__()
        self._gfile = gfile

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._gfile.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._gfile.seek(offset, whence)
        return self._gfile.tell()

    def tell(self) -> int:
        return self._gfile.tell()
