"""Conditioning features for any clip length: semantic (SigLIP frames), text (SigLIP captions), sync."""
