"""Shared fixtures: tiny models and real audio/image files written by the tests."""
from __future__ import annotations

import dataclasses
import tempfile

import pytest
import torch

from avdemo.config import AudioConfig, ModelConfig


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(autouse=True, scope="session")
def _temp_files_in_the_session_folder(tmp_path_factory):
    """This process's temporary files go under pytest's session folder, removed with it: gradio_client
    leaves an empty folder in the system temp directory for every file it downloads."""
    tempfile.tempdir = str(tmp_path_factory.mktemp("tmp"))
    yield
    tempfile.tempdir = None


@pytest.fixture
def tiny_config() -> ModelConfig:
    """A small model: 64 px frames (4x4 map), 0.5 s of 8 kHz audio (65 x 23 spectrogram)."""
    return ModelConfig(image_size=64, audio=AudioConfig(sample_rate=8000, window_s=0.5, nperseg=128,
                                                        noverlap=48, downmix="mean"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The app tests' tiny checkpoint, small split and index (``appdata.app_data``: built once a session)."""
    from appdata import app_data

    return app_data(tmp_path_factory.mktemp("appdata"))


@pytest.fixture
def tiny_model(tiny_config):
    from avdemo.model import AVLocalizer

    torch.manual_seed(0)
    return AVLocalizer(tiny_config).eval()


def with_head(cfg: ModelConfig, head: bool) -> ModelConfig:
    return dataclasses.replace(cfg, alignment_head=head)
