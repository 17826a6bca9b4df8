"""The push protocol: exclusive version claims, versions visible only when complete."""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent import futures

import google.cloud.storage
import pytest

from components.pusher import executor
from components.qa import contracts
from tests.pusher.fake_gcs import FakeClient, FakeStorage

RACES = 20
PUSHERS = 3


def make_files(root, label: str) -> tuple[dict[str, str], dict[str, str]]:
    """Small model and evaluation files whose content depends on `label`."""
    root.mkdir(parents=True)
    contents = {"model.tflite": f"tflite {label}", "vocab.txt": "[PAD]\n[UNK]\n",
                "saved_model/saved_model.pb": f"graph {label}", "metrics.json": "{}"}
    paths = {}
    for name, text in contents.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths[name] = str(path)
    evaluation = {"metrics.json": paths.pop("metrics.json")}
    return paths, evaluation


def assert_complete(version_dir, model_files: dict[str, str]) -> None:
    """The version holds these model files, a manifest of them and the marker."""
    manifest = json.loads((version_dir / contracts.MANIFEST_FILE).read_text())
    assert (version_dir / executor.COMPLETE_MARKER).is_file()
    assert manifest["version"] == int(version_dir.name)
    assert sorted(manifest["files"]) == sorted(model_files)
    for name, source in model_files.items():
        data = (version_dir / name).read_bytes()
        assert data == open(source, "rb").read(), name
        assert manifest["files"][name] == hashlib.sha256(data).hexdigest(), name


def race(destination: str, inputs: list[tuple[dict[str, str], dict[str, str]]]) -> list[
    tuple[int, bool]
]:
    """`push()` of each input, in threads started together; their results in input order."""
    barrier = threading.Barrier(len(inputs))

    def push(files: tuple[dict[str, str], dict[str, str]]) -> tuple[int, bool]:
        barrier.wait()
        return executor.push(destination, *files, {})

    with futures.ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(push, inputs))


def test_racing_pushers_get_different_complete_versions(tmp_path):
    inputs = [make_files(tmp_path / "inputs" / str(p), f"pusher {p}") for p in range(PUSHERS)]
    for i in range(RACES):
        destination = tmp_path / f"race{i}"
        results = race(str(destination), inputs)
        assert sorted(results) == [(v, True) for v in range(1, PUSHERS + 1)], i
        assert sorted(executor.complete_versions(str(destination))) == list(
            range(1, PUSHERS + 1))
        for (version, _), (model_files, _) in zip(results, inputs, strict=True):
            assert_complete(destination / str(version), model_files)


def test_a_version_without_the_marker_is_not_served_and_its_number_not_reused(tmp_path):
    destination = tmp_path / "serving"
    first, second = make_files(tmp_path / "a", "a"), make_files(tmp_path / "b", "b")
    assert executor.latest_complete_version(str(destination)) is None
    assert executor.push(str(destination), *first, {}) == (1, True)
    # Version 2: b, claimed and written by a pusher that has not finished (or crashed).
    assert executor.push(str(destination), *second, {}) == (2, True)
    (destination / "2" / executor.COMPLETE_MARKER).unlink()
    assert sorted(executor.complete_versions(str(destination))) == [1]
    assert executor.latest_complete_version(str(destination)) == 1
    before = {p.name: p.read_bytes() for p in (destination / "2").iterdir() if p.is_file()}
    # b is not pushed yet as far as readers know: it becomes version 3, not 2.
    assert executor.push(str(destination), *second, {}) == (3, True)
    assert executor.push(str(destination), *first, {}) == (1, False)
    assert {p.name: p.read_bytes() for p in (destination / "2").iterdir()
            if p.is_file()} == before
    assert sorted(executor.complete_versions(str(destination))) == [1, 3]
    assert executor.latest_complete_version(str(destination)) == 3
    assert_complete(destination / "3", second[0])


@pytest.fixture
def fake_gcs(monkeypatch) -> FakeStorage:
    """google.cloud.storage.Client replaced by an in-process fake."""
    storage = FakeStorage()
    monkeypatch.setattr(google.cloud.storage, "Client", lambda: FakeClient(storage))
    return storage


def test_a_gs_version_is_claimed_by_one_pusher_only(fake_gcs):
    destination = "gs://models/qa/serving"
    notes = [f"pusher {i}" for i in range(8)]
    barrier = threading.Barrier(len(notes))

    def claim(note: str) -> bool:
        barrier.wait()
        return executor.claim_version(destination, 7, note)

    with futures.ThreadPoolExecutor(len(notes)) as pool:
        won = list(pool.map(claim, notes))
    winners = [note for note, w in zip(notes, won, strict=True) if w]
    assert len(winners) == 1
    assert fake_gcs.objects == {
        ("models", "qa/serving/7/_CLAIMED"): (winners[0].encode(), 1)}
    assert not executor.claim_version(destination, 7, "late")
    assert executor.claim_version(destination, 8, "next")
    assert fake_gcs.objects[("models", "qa/serving/8/_CLAIMED")] == (b"next", 2)


def test_a_local_version_is_claimed_once_without_gcs(fake_gcs, tmp_path):
    destination = str(tmp_path / "serving")
    assert executor.claim_version(destination, 1, "first")
    assert not executor.claim_version(destination, 1, "second")
    assert (tmp_path / "serving" / "1" / executor.CLAIM_FILE).read_text() == "first"
    assert fake_gcs.objects == {}
    with pytest.raises(ValueError, match="no exclusive create"):
        executor.claim_version("s3://bucket/serving", 1)
