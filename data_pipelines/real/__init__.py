"""tfds builders for real data the user already has on disk (tfds manual_dir): VGGSound-style video
clips with labels, and WavCaps/AudioSetCaps-style audio with captions. Nothing is downloaded."""
