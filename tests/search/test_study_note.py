"""The study note names the codecs, single or pipelines (a pipeline once crashed `run`)."""

from __future__ import annotations

from fedsearch import resolve_study
from fedsearch.study import study_note
from tests._studies import DROP, tiny_study, write_study


def test_note_names_codec_pipelines(tmp_path, registry):
    uplink = [{"name": "error_feedback"}, {"name": "topk", "params": {"fraction": 0.1}}]
    study = tiny_study(federation={"uplink_codec": uplink, "downlink_codec": {"name": "float16"}})
    note = study_note(resolve_study(write_study(tmp_path, study), registry))
    assert "codecs `float16` down / `error_feedback+topk` up" in note


def test_note_says_where_the_teacher_came_from(tmp_path, registry):
    trained = study_note(resolve_study(write_study(tmp_path / "a", tiny_study()), registry))
    assert '- teacher `mlp` `{"widths": [32]}`, 3 rounds' in trained
    teacher = {"pretrained": "teacher.pt", "rounds": DROP}
    path = write_study(tmp_path / "b", tiny_study(teacher=teacher))
    note = study_note(resolve_study(path, registry))
    expected = '- teacher `mlp` `{"widths": [32]}`, loaded from the pretrained file `teacher.pt`'
    assert expected in note.splitlines()
