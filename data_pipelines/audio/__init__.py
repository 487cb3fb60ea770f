"""Audio crops for training the VAE: from the synthetic world (rendered on the fly) or a folder of files."""

from data_pipelines.audio.crops import AudioFiles, SyntheticAudio, crop_dataset, crop_iterator

__all__ = ["AudioFiles", "SyntheticAudio", "crop_dataset", "crop_iterator"]
