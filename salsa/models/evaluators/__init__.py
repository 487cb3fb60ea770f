"""The field's evaluation embedders (PaSST, PANNs CNN14, VGGish): frozen reference networks, in JAX, that the
standard audio metrics (FD, KL, IS) are computed with. Inference only; weights come from
`python -m salsa.convert passt|panns|vggish` (docs/metrics.md)."""
