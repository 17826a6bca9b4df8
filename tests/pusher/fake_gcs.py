"""An in-process fake of the google-cloud-storage client API: Client → Bucket → Blob."""

from __future__ import annotations

import threading

from google.api_core import exceptions


class FakeStorage:
    """The objects of every bucket: {(bucket, name): (data, generation)}."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, int]] = {}
        self._lock = threading.Lock()
        self._generation = 0

    def write(self, bucket: str, name: str, data: bytes, if_generation_match: int | None) -> None:
        """Stores the object if its generation (0: absent) matches, as GCS preconditions do."""
        with self._lock:
            current = self.objects.get((bucket, name), (b"", 0))[1]
            if if_generation_match is not None and if_generation_match != current:
                raise exceptions.PreconditionFailed(
                    f"gs://{bucket}/{name}: generation {current}, not {if_generation_match}")
            self._generation += 1
            self.objects[(bucket, name)] = (data, self._generation)


class FakeClient:
    """Stands for `google.cloud.storage.Client`, over a `FakeStorage`."""

    def __init__(self, storage: FakeStorage) -> None:
        self.storage = storage

    def bucket(self, bucket_name: str) -> FakeBucket:
        return FakeBucket(self.storage, bucket_name)


class FakeBucket:
    def __init__(self, storage: FakeStorage, name: str) -> None:
        self.storage, self.name = storage, name

    def blob(self, blob_name: str) -> FakeBlob:
        return FakeBlob(self, blob_name)


class FakeBlob:
    def __init__(self, bucket: FakeBucket, name: str) -> None:
        self.bucket, self.name = bucket, name

    def upload_from_string(self, data: str | bytes, content_type: str = "text/plain",
                           if_generation_match: int | None = None) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.bucket.storage.write(self.bucket.name, self.name, data, if_generation_match)
