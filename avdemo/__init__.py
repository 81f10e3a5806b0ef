"""avdemo: audio-visual sound source localization (Senocak et al., ICCV 2023) - model, data, metrics, app."""
from .checkpoints import load_model, save_model
from .config import AudioConfig, ModelConfig, preset
from .errors import AVDemoError
from .model import AVLocalizer, Localization

__all__ = ["AVLocalizer", "AVDemoError", "AudioConfig", "Localization", "ModelConfig", "load_model",
           "preset", "save_model"]
