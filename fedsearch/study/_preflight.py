"""What ``run_study`` checks before the study exists in storage."""

from __future__ import annotations

from fedsearch._errors import ConfigError
from fedsearch.federated import FederatedData
from fedsearch.search._resolve import ResolvedStudy, default_storage_url
from fedsearch.study._pretrained import load_pretrained_weights, pretrained_path
from fedsearch.study._storage_checks import check_storage, check_writable_folder
from fedsearch.study._transfer_checks import check_frozen_layers
from fedsearch.trial import prepare_data


def storage_field(study: ResolvedStudy) -> tuple[str, str | None]:
    """Where the study's storage URL came from: ``(field, study file or None)``."""
    if study.storage_url == study.config.storage:
        return "storage", study.source
    if study.storage_url == default_storage_url(study.config.output_dir):
        return "output_dir", study.source
    return "--storage", None


def prepare_study(study: ResolvedStudy) -> FederatedData:
    """Everything checkable before the study is stored: storage, output folder, data.

    Returns:
        The prepared (split and partitioned) data, so it is loaded once.

    Raises:
        ConfigError: The storage or output folder cannot be used, the data
            is missing or too small for the clients and the validation split, or
            the pretrained teacher's file is missing or does not fit its architecture,
            or the space can freeze every layer of the teacher.
    """
    field, source = storage_field(study)
    check_storage(study.storage_url, create=True, field=field, source=source)
    check_writable_folder(study.output_dir, field="output_dir", source=study.source)
    try:
        data = prepare_data(study)
    except ConfigError as error:
        if error.source is not None:
            raise
        raise ConfigError(error.message, source=study.source, field=error.field) from None
    if pretrained_path(study) is not None:  # the file fits the teacher, or nothing is stored
        load_pretrained_weights(study, data.input_shape, data.num_classes)
    check_frozen_layers(study, data)
    return data
