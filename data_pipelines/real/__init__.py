"""Real data the user already has on disk (nothing is downloaded): the VGGSound layout that extraction
reads (vggsound.py), and a tfds builder for WavCaps/AudioSetCaps-style audio with captions
(audio_text.py, tfds manual_dir)."""
