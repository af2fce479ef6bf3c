import pytest

from tfmm.errors import TfmmError
from tfmm.export import check_model_name, latest_version_dir, versions, write_version


def test_versions_are_numbered_and_renamed_into_place(tmp_path):
    seen = []

    def write(folder):
        seen.append(folder.name)
        folder.mkdir()
        (folder / "saved_model.pb").write_text("x")

    first = write_version(tmp_path, "m", write)
    second = write_version(tmp_path, "m", write)
    assert (first.name, second.name) == ("1", "2")
    assert all(name.startswith(".tmp-") for name in seen)  # TF Serving ignores non-integer names
    assert versions(tmp_path / "m") == [1, 2] and latest_version_dir(tmp_path / "m") == second


def test_a_failed_write_leaves_no_version(tmp_path):
    def broken(folder):
        folder.mkdir()
        (folder / "saved_model.pb").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_version(tmp_path, "m", broken)
    assert list((tmp_path / "m").iterdir()) == []


def test_bad_names_are_refused(tmp_path):
    for name in ("../evil", "a/b", "", ".hidden"):
        with pytest.raises(TfmmError, match="invalid model name"):
            check_model_name(name)
    with pytest.raises(TfmmError, match="no exported versions"):
        latest_version_dir(tmp_path)
