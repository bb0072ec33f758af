"""The study note names the codecs, single or pipelines (a pipeline once crashed `run`)."""

from __future__ import annotations

from fedsearch import resolve_study
from fedsearch.study import study_note
from tests._studies import tiny_study, write_study


def test_note_names_codec_pipelines(tmp_path, registry):
    uplink = [{"name": "error_feedback"}, {"name": "topk", "params": {"fraction": 0.1}}]
    study = tiny_study(federation={"uplink_codec": uplink, "downlink_codec": {"name": "float16"}})
    note = study_note(resolve_study(write_study(tmp_path, study), registry))
    assert "codecs `float16` down / `error_feedback+topk` up" in note
